"""The layer list: one description of a network that every runner of a model file reads.

``describe(model)`` walks a tfe model (DeepID, ResNet, TFE) and returns its layers in the
order they run; a model file stores that list (metadata "layers", JSON), and the Python
loader (``build``), the C library (csrc/infer/graph.cpp) and the ONNX export all build
their network from it, and so does the PyTorch twin of the benchmarks and tests
(benchmarks/torch_models.py, which also trains it). A file written before the list
was stored gets the list its architecture JSON describes
(``tfe.model_reader`` / layers.cpp: layers_from_architecture).

A layer is a JSON object: ``kind``, the index of the layer it reads (``input``; -1 is the
network input; for ``concat`` and ``tfe_head``, ``inputs: [a, b]``), the prefix of its
tensors (``name``, where it has tensors) and its hyper-parameters:

- ``conv2d``: in_channels, out_channels, kernel, stride, padding, bias; tensors weight
  [, bias];
- ``batchnorm``: channels, eps (evaluation: the running statistics); tensors weight, bias,
  running_mean, running_var;
- ``relu``; ``flatten``; ``global_avg_pool`` (a [N, C] feature);
- ``maxpool2d``: kernel, stride;
- ``residual_block``: in_channels, out_channels, kernel, stride, padding, eps, shortcut:
  relu(bn2(conv2(relu(bn1(conv1(x))))) + s) with s = x (``"identity"``) or proj_bn(proj(x))
  (``"projection"``, a 1x1 convolution at the block's stride); tensors under conv1, bn1,
  conv2, bn2 [, proj, proj_bn];
- ``concat``: inputs, joined along the features;
- ``linear``: in_features, out_features, bias; tensors weight, bias;
- ``dropout``: p (the identity in evaluation mode);
- ``tfe_head``: inputs [identity, emotion], identity_dim, emotion_dim, num_classes, eps:
  linear(batchnorm(concat)); tensors bn_weight, bn_bias, running_mean, running_var, weight,
  bias.

The network's output is the last layer. Layers nothing reads (a TFE model's branch
classifiers, kept for fine-tuning the branch again) are checked and loaded, never run.
"""

from . import nn, ops
from .model_reader import TWO_INPUTS, _ListWriter
from .models import TFE, DeepID, ResNet


# ---- describe: a model -> its layer list --------------------------------------------------------
def describe(model):
    """The layer list of a DeepID, ResNet or TFE model (a list of dicts), with every
    hyper-parameter read from its modules; ValueError for other models."""
    out = _ListWriter()
    if isinstance(model, TFE):
        zi = _deepid(out, model.identity, "identity.", -1)
        ze = _resnet(out, model.emotion, "emotion.", -1)
        h = model.head
        out.add("tfe_head", [zi, ze], name="head", identity_dim=h.identity_dim,
                emotion_dim=h.emotion_dim, num_classes=int(h.weight.shape[0]), eps=float(h.eps))
    elif isinstance(model, ResNet):
        _resnet(out, model, "", -1)
    elif isinstance(model, DeepID):
        _deepid(out, model, "", -1)
    else:
        raise ValueError(f"[layers.describe] no layer list for {type(model).__name__}")
    return out.layers


def _conv(out, name, m, input=None):
    k_out, k_in, k, _ = m.weight.shape
    return out.add("conv2d", input, name=name, in_channels=int(k_in), out_channels=int(k_out),
                   kernel=int(k), stride=m.stride, padding=m.padding, bias=m.bias is not None)


def _batchnorm(out, name, m):
    return out.add("batchnorm", name=name, channels=int(m.weight.shape[0]), eps=float(m.eps))


def _linear(out, name, m, input=None):
    o, i = m.weight.shape
    return out.add("linear", input, name=name, in_features=int(i), out_features=int(o),
                   bias=m.bias is not None)


def _block(out, name, b):
    eps = {float(bn.eps) for bn in (b.bn1, b.bn2, getattr(b, "proj_bn", b.bn1))}
    if len(eps) != 1:
        raise ValueError(f"[layers.describe] {name}: its batch norms differ in eps")
    projection = isinstance(b, nn.ProjectionBlock)
    k_out, k_in, k, _ = b.conv1.weight.shape
    return out.add("residual_block", name=name, in_channels=int(k_in), out_channels=int(k_out),
                   kernel=int(k), stride=b.conv1.stride, padding=b.conv1.padding,
                   shortcut="projection" if projection else "identity", eps=eps.pop())


def _deepid(out, m, p, input):
    """DeepID.features then dropout and the classifier; returns the feature's index."""
    x = input
    for i, conv in enumerate((m.conv1, m.conv2, m.conv3, m.conv4)):
        _conv(out, f"{p}conv{i + 1}", conv, x)
        x = relu4 = out.add("relu")
        if i < 3:
            x = pool3 = out.add("maxpool2d", kernel=m.pool.k, stride=m.pool.stride or m.pool.k)
    cat = out.add("concat", [out.add("flatten", pool3), out.add("flatten", relu4)])
    _linear(out, f"{p}fc", m.fc, cat)
    feature = out.add("relu")
    out.add("dropout", p=float(m.dropout.p))
    _linear(out, f"{p}classifier", m.classifier)
    return feature


def _resnet(out, m, p, input):
    """ResNet.features then fc; returns the index of the global average pool."""
    _conv(out, f"{p}stem_conv", m.stem_conv, input)
    _batchnorm(out, f"{p}stem_bn", m.stem_bn)
    out.add("relu")
    for i, b in enumerate(m.blocks):
        _block(out, f"{p}blocks.{i}", b)
    pool = out.add("global_avg_pool")
    _linear(out, f"{p}fc", m.fc)
    return pool


# ---- build: a layer list -> a runnable model ----------------------------------------------------
def live(layers):
    """Flags: which layers the output (the last layer) depends on."""
    need = [False] * len(layers)
    need[-1] = True
    for i in range(len(layers) - 1, -1, -1):
        if need[i]:
            for j in inputs_of(layers, i):
                if j >= 0:
                    need[j] = True
    return need


def inputs_of(layers, i):
    """The indices layer i reads (-1: the network input)."""
    layer = layers[i]
    if layer["kind"] in TWO_INPUTS:
        return list(layer["inputs"])
    return [layer.get("input", i - 1)]


def _attach(root, dotted, module):
    """Registers ``module`` under its dotted name, making the containers on the way, so that
    state_dict() names its tensors as the list does."""
    *path, leaf = dotted.split(".")
    for part in path:
        if part not in root._modules:
            setattr(root, part, nn.Module())
        root = root._modules[part]
    setattr(root, leaf, module)


def _module(layer):
    """The tfe.nn module of a layer with tensors (None for the others)."""
    kind = layer["kind"]
    if kind == "conv2d":
        return nn.Conv2d(layer["in_channels"], layer["out_channels"], layer["kernel"],
                         layer["stride"], layer["padding"], layer["bias"])
    if kind == "batchnorm":
        return nn.BatchNorm2d(layer["channels"], eps=layer["eps"])
    if kind == "linear":
        return nn.Linear(layer["in_features"], layer["out_features"], layer["bias"])
    if kind == "residual_block":
        b = (nn.ProjectionBlock(layer["in_channels"], layer["out_channels"])
             if layer["shortcut"] == "projection" else nn.IdentityBlock(layer["out_channels"]))
        for bn in (b.bn1, b.bn2, getattr(b, "proj_bn", b.bn1)):
            bn.eps = layer["eps"]
        return b
    if kind == "tfe_head":
        return nn.TFEHead(layer["identity_dim"], layer["emotion_dim"], layer["num_classes"],
                          eps=layer["eps"])
    return None


class LayerNet(nn.Module):
    """The network a (checked) layer list describes, in evaluation mode only: dropout is the
    identity and batch norm uses its running statistics. ``arch`` is the file's architecture
    JSON, kept for who reads it (e.g. --init-emotion)."""

    def __init__(self, layers, arch=None):
        super().__init__()
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "arch", arch)
        object.__setattr__(self, "_live", live(layers))
        object.__setattr__(self, "_modules_of", [])
        for layer in layers:
            m = _module(layer)
            if m is not None:
                _attach(self, layer["name"], m)
            self._modules_of.append(m)
        self.eval()

    def forward(self, x):
        values = {-1: x}
        for i, layer in enumerate(self.layers):
            if self._live[i]:
                values[i] = self._run(i, layer, [values[j] for j in inputs_of(self.layers, i)])
        return values[len(self.layers) - 1]

    def _run(self, i, layer, xs):
        kind, m = layer["kind"], self._modules_of[i]
        if m is not None:
            return m(*xs)
        x = xs[0]
        if kind == "relu":
            return ops.relu(x)
        if kind == "maxpool2d":
            return ops.max_pool2d(x, layer["kernel"], layer["stride"], 0)
        if kind == "global_avg_pool":
            return ops.global_avg_pool(x)
        if kind == "flatten":
            return ops.flatten(x)
        if kind == "concat":
            return ops.concat(xs)
        if kind == "dropout":
            return x  # evaluation mode
        raise ValueError(f"[layers] layers[{i}]: unknown kind {kind!r}")

    def train(self, mode=True):
        if mode:
            raise ValueError("[layers.LayerNet] runs in evaluation mode only")
        return super().train(False)


def build(layers, arch=None):
    """A LayerNet for ``layers`` (already checked by tfe.model_reader.validate_model)."""
    return LayerNet(layers, arch)

