"""Export a tfe model file to ONNX: ``tfe-export MODEL --onnx OUT.onnx`` (needs ``pip install
onnx``; running the result needs an ONNX runtime such as onnxruntime).

The graph takes ``pixels``: float32 [N, 1, S, S] gray levels 0..255, already resized to the
model's input (``tfe.data.transforms.resize_gray``), applies the model's per-pixel
normalisation, runs the network in evaluation mode and returns ``logits`` [N, K] and
``probabilities`` [N, K] (softmax). The label order and the input size are stored in the
ONNX metadata (``labels`` as JSON, ``input_size``). The batch dimension is dynamic.

The graph is built from the model file's layer list (tfe.layers; BN eps included).
Layers map one to one: Conv, BatchNormalization (running statistics), Relu, Add, MaxPool,
GlobalAveragePool, Flatten, Concat, Gemm; the TFE head's BatchNorm1d over the concatenated
features becomes a per-feature Mul + Add with the running statistics folded in (exact to a
float32 rounding).
"""

import argparse
import json

import numpy as np

from . import layers, model_reader

OPSET = 17


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

    def conv(self, x, prefix, k, stride, pad, bias=False):
        ins = [x, self.weight(prefix + ".weight")] + ([self.weight(prefix + ".bias")] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[pad] * 4)

    def bn(self, x, prefix, eps):
        return self.op("BatchNormalization",
                       [x] + [self.weight(f"{prefix}.{s}")
                              for s in ("weight", "bias", "running_mean", "running_var")],
                       epsilon=float(eps))

    def linear(self, x, prefix):
        return self.op("Gemm", [x, self.weight(prefix + ".weight"), self.weight(prefix + ".bias")],
                       transB=1)

    # ---- the layer list (tfe.layers) ----
    def network(self, x, layer_list):
        """The output of the layers the last one depends on, in order, reading ``x``."""
        values = {-1: x}
        for i, need in enumerate(layers.live(layer_list)):
            if need:
                ins = [values[j] for j in layers.inputs_of(layer_list, i)]
                values[i] = self.layer(layer_list[i], ins)
        return values[len(layer_list) - 1]

    def layer(self, layer, ins):
        kind, x = layer["kind"], ins[0]
        if kind == "conv2d":
            return self.conv(x, layer["name"], layer["kernel"], layer["stride"], layer["padding"],
                             layer["bias"])
        if kind == "batchnorm":
            return self.bn(x, layer["name"], layer["eps"])
        if kind == "relu":
            return self.op("Relu", [x])
        if kind == "maxpool2d":
            k, s = layer["kernel"], layer["stride"]
            return self.op("MaxPool", [x], kernel_shape=[k, k], strides=[s, s])
        if kind == "residual_block":
            return self.residual_block(x, layer)
        if kind == "global_avg_pool":
            return self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)
        if kind == "flatten":
            return self.op("Flatten", [x], axis=1)
        if kind == "concat":
            return self.op("Concat", ins, axis=1)
        if kind == "linear":
            return self.linear(x, layer["name"])
        if kind == "dropout":
            return x  # the identity in evaluation mode
        if kind == "tfe_head":
            return self.tfe_head(ins, layer)
        raise ValueError(f"[export_onnx] unsupported layer kind {kind!r}")

    def residual_block(self, x, layer):
        q, s, eps = layer["name"] + ".", layer["stride"], layer["eps"]
        t = self.op("Relu", [self.bn(self.conv(x, q + "conv1", 3, s, 1), q + "bn1", eps)])
        t = self.bn(self.conv(t, q + "conv2", 3, 1, 1), q + "bn2", eps)
        sc = x
        if layer["shortcut"] == "projection":
            sc = self.bn(self.conv(x, q + "proj", 1, s, 0), q + "proj_bn", eps)
        return self.op("Relu", [self.op("Add", [t, sc])])

    def tfe_head(self, ins, layer):
        """BN1d over the concatenated features as a per-feature Mul + Add (the running
        statistics folded in, in float64), then the FC."""
        p, t = layer["name"], self.tensors
        z = self.op("Concat", ins, axis=1)
        scale = (t[f"{p}.bn_weight"].astype(np.float64)
                 / np.sqrt(t[f"{p}.running_var"].astype(np.float64) + layer["eps"]))
        shift = t[f"{p}.bn_bias"] - t[f"{p}.running_mean"] * scale
        z = self.op("Add", [self.op("Mul", [z, self.const(f"{p}.scale", scale)]),
                            self.const(f"{p}.shift", shift)])
        return self.linear(z, p)


def export(model_path, out_path):
    """Writes the ONNX model for ``model_path`` to ``out_path``; returns out_path."""
    _require_onnx()
    import onnx
    from onnx import TensorProto, helper

    valid = model_reader.validate_model(model_reader.read_container(model_path))
    tensors, arch, size, labels = (valid.tensors, valid.architecture, valid.input_size,
                                   valid.labels)
    g = _Graph(tensors)
    inv_std = (1.0 / tensors["preprocess.std"].astype(np.float64)).astype(np.float32)
    x = g.op("Mul", [g.op("Sub", ["pixels", g.const("preprocess.mean",
                                                    tensors["preprocess.mean"][None, None])]),
                     g.const("preprocess.inv_std", inv_std[None, None])])
    logits = g.network(x, valid.layers)
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
                                   "architecture": json.dumps(arch),
                                   "layers": json.dumps(valid.layers)})
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
