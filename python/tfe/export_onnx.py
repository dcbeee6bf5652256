"""Export a tfe model file to ONNX: ``tfe-export MODEL --onnx OUT.onnx`` (needs ``pip install
onnx``; running the result needs an ONNX runtime such as onnxruntime).

The graph takes ``pixels``: float32 [N, 1, S, S] gray levels 0..255, already resized to the
model's input (``tfe.data.transforms.resize_gray``), applies the model's per-pixel
normalisation, runs the network in evaluation mode and returns ``logits`` [N, K] and
``probabilities`` [N, K] (softmax). The label order and the input size are stored in the
ONNX metadata (``labels`` as JSON, ``input_size``). The batch dimension is dynamic.

Layers map one to one: Conv, BatchNormalization (running statistics), Relu, Add, MaxPool,
GlobalAveragePool, Flatten, Concat, Gemm; the TFE head's BatchNorm1d over the concatenated
features becomes a per-feature Mul + Add with the running statistics folded in (exact to a
float32 rounding).
"""

import argparse
import json

import numpy as np

from . import checkpoint

OPSET = 17
EPS = 1e-5


def _require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SystemExit("tfe-export: the ONNX export needs the `onnx` package "
                         "(pip install onnx)") from None


class _Graph:
    def __init__(self, tensors):
        from onnx import helper, numpy_helper
        self.h, self.nh = helper, numpy_helper
        self.tensors = tensors
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, name, value):
        self.inits.append(self.nh.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def weight(self, key):
        return self.const(key, self.tensors[key])

    def op(self, kind, inputs, **attrs):
        self.count += 1
        out = f"{kind.lower()}_{self.count}"
        self.nodes.append(self.h.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(self, x, prefix, k, stride=1, pad=0, bias=False):
        ins = [x, self.weight(prefix + ".weight")] + ([self.weight(prefix + ".bias")] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[pad] * 4)

    def bn(self, x, prefix):
        return self.op("BatchNormalization",
                       [x] + [self.weight(f"{prefix}.{s}")
                              for s in ("weight", "bias", "running_mean", "running_var")],
                       epsilon=EPS)

    def linear(self, x, prefix):
        return self.op("Gemm", [x, self.weight(prefix + ".weight"), self.weight(prefix + ".bias")],
                       transB=1)

    # ---- networks (same structure as tfe.models) ----
    def deepid_features(self, x, p):
        h = x
        for i, k in enumerate((4, 3, 3)):
            h = self.op("Relu", [self.conv(h, f"{p}conv{i + 1}", k, bias=True)])
            h = self.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
        pool3 = h
        conv4 = self.op("Relu", [self.conv(pool3, f"{p}conv4", 2, bias=True)])
        z = self.op("Concat", [self.op("Flatten", [pool3], axis=1),
                               self.op("Flatten", [conv4], axis=1)], axis=1)
        return self.op("Relu", [self.linear(z, f"{p}fc")])

    def resnet_features(self, x, p, arch):
        h = self.op("Relu", [self.bn(self.conv(x, f"{p}stem_conv", 3, 1, 1), f"{p}stem_bn")])
        i = 0
        for stage, count in enumerate(arch["blocks"]):
            for j in range(count):
                q = f"{p}blocks.{i}."
                proj = stage > 0 and j == 0
                s = 2 if proj else 1
                t = self.op("Relu", [self.bn(self.conv(h, q + "conv1", 3, s, 1), q + "bn1")])
                t = self.bn(self.conv(t, q + "conv2", 3, 1, 1), q + "bn2")
                sc = self.bn(self.conv(h, q + "proj", 1, 2, 0), q + "proj_bn") if proj else h
                h = self.op("Relu", [self.op("Add", [t, sc])])
                i += 1
        return self.op("Flatten", [self.op("GlobalAveragePool", [h])], axis=1)

    def network(self, x, arch, p=""):
        name = arch["name"]
        if name == "deepid":
            return self.linear(self.deepid_features(x, p), f"{p}classifier")
        if name in ("resnet12", "resnet18", "resnet"):
            return self.linear(self.resnet_features(x, p, arch), f"{p}fc")
        if name == "tfe":
            zi = self.deepid_features(x, "identity.")
            ze = self.resnet_features(x, "emotion.", arch["emotion"])
            z = self.op("Concat", [zi, ze], axis=1)
            t = self.tensors
            scale = (t["head.bn_weight"].astype(np.float64)
                     / np.sqrt(t["head.running_var"].astype(np.float64) + EPS))
            shift = t["head.bn_bias"] - t["head.running_mean"] * scale
            z = self.op("Add", [self.op("Mul", [z, self.const("head.scale", scale)]),
                                self.const("head.shift", shift)])
            return self.linear(z, "head")
        raise ValueError(f"[export_onnx] unsupported architecture {name!r}")


def export(model_path, out_path):
    """Writes the ONNX model for ``model_path`` to ``out_path``; returns out_path."""
    _require_onnx()
    import onnx
    from onnx import TensorProto, helper

    tensors, meta = checkpoint.load(model_path)
    arch, pre = meta["architecture"], meta["preprocessing"]
    size = int(pre["input_size"][0])
    labels = list(pre["labels"])
    g = _Graph(tensors)
    inv_std = (1.0 / tensors["preprocess.std"].astype(np.float64)).astype(np.float32)
    x = g.op("Mul", [g.op("Sub", ["pixels", g.const("preprocess.mean",
                                                    tensors["preprocess.mean"][None, None])]),
                     g.const("preprocess.inv_std", inv_std[None, None])])
    logits = g.network(x, arch)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    g.nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    k = len(labels)
    graph = helper.make_graph(
        g.nodes, f"tfe-{arch['name']}",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", k])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tfe")
    model.ir_version = min(model.ir_version, 8)  # readable by older runtimes too
    helper.set_model_props(model, {"labels": json.dumps(labels), "input_size": str(size),
                                   "architecture": json.dumps(arch)})
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path


def main(argv=None):
    p = argparse.ArgumentParser(prog="tfe-export", description="Export a tfe model file")
    p.add_argument("model", help="a .safetensors model file written by tfe-train")
    p.add_argument("--onnx", required=True, metavar="OUT", help="write an ONNX model to OUT")
    args = p.parse_args(argv)
    try:
        export(args.model, args.onnx)
    except (ValueError, KeyError, OSError) as e:  # ValueError includes InputError
        raise SystemExit(f"tfe-export: error: {e}")
    print(f"wrote {args.onnx}")
    return 0


if __name__ == "__main__":
    main()
