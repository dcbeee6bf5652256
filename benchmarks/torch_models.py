"""PyTorch twins of tfe's networks, built from the layer list a tfe model describes.

The twin of a tfe model is ``build(tfe.layers.describe(model))``: the same layer list that
a model file stores and that the C library and the ONNX export run, here as PyTorch
modules that also train (batch norm with batch statistics, dropout). Every parameter and
buffer has the name it has in tfe's ``state_dict()``, so a tfe model's weights load into
its twin by name (``load_tfe_state``) and the two compute the same function: the
benchmarks time both from identical weights, and the tests check that the twins' forward
and training step equal tfe's. The network's structure is therefore written once, in
python/tfe/layers.py; this file knows only what each kind of layer computes.

    import torch_models
    tm = torch_models.mirror(tfe_model)           # from tfe_model's layer list, weights copied
    torch_models.load_tfe_state(tm, tfe_model.state_dict())   # copy again later

Only ``num_batches_tracked`` (a counter PyTorch's batch norm keeps and tfe does not) is
allowed to exist on one side only. This module does not import tfe (the benchmarks' PyTorch
processes run without it): ``mirror`` takes the list from the model it is given.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.1  # tfe's BatchNorm2d / TFEHead default (the same as torch's)


class Block(nn.Module):
    """A ``residual_block`` layer: relu(bn2(conv2(relu(bn1(conv1(x))))) + s), with s = x or
    proj_bn(proj(x)) (a 1x1 convolution at the block's stride)."""

    def __init__(self, cin, cout, kernel, stride, padding, eps, projection):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps, BN_MOMENTUM)
        self.conv2 = nn.Conv2d(cout, cout, kernel, 1, padding, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps, BN_MOMENTUM)
        self.projection = projection
        if projection:
            self.proj = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
            self.proj_bn = nn.BatchNorm2d(cout, eps, BN_MOMENTUM)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        s = self.proj_bn(self.proj(x)) if self.projection else x
        return F.relu(self.bn2(self.conv2(h)) + s)


class TFEHead(nn.Module):
    """A ``tfe_head`` layer: BN1d over zi ++ ze (one vector per statistic, tfe's names), then
    a linear layer. F.batch_norm is used directly so that the buffers keep tfe's names (an
    nn.BatchNorm1d would nest them under a sub-module)."""

    def __init__(self, identity_dim, emotion_dim, num_classes, eps):
        super().__init__()
        d = identity_dim + emotion_dim
        self.eps, self.momentum = eps, BN_MOMENTUM
        self.bn_weight = nn.Parameter(torch.ones(d))
        self.bn_bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("running_mean", torch.zeros(d))
        self.register_buffer("running_var", torch.ones(d))
        self.weight = nn.Parameter(torch.empty(num_classes, d))
        self.bias = nn.Parameter(torch.empty(num_classes))
        bound = d ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, zi, ze):
        z = F.batch_norm(torch.cat([zi, ze], 1), self.running_mean, self.running_var,
                         self.bn_weight, self.bn_bias, self.training, self.momentum, self.eps)
        return F.linear(z, self.weight, self.bias)


def _module(layer):
    """The PyTorch module of a layer with tensors (None for the others)."""
    kind = layer["kind"]
    if kind == "conv2d":
        return nn.Conv2d(layer["in_channels"], layer["out_channels"], layer["kernel"],
                         layer["stride"], layer["padding"], bias=layer["bias"])
    if kind == "batchnorm":
        return nn.BatchNorm2d(layer["channels"], layer["eps"], BN_MOMENTUM)
    if kind == "linear":
        return nn.Linear(layer["in_features"], layer["out_features"], bias=layer["bias"])
    if kind == "residual_block":
        return Block(layer["in_channels"], layer["out_channels"], layer["kernel"],
                     layer["stride"], layer["padding"], layer["eps"],
                     layer["shortcut"] == "projection")
    if kind == "tfe_head":
        return TFEHead(layer["identity_dim"], layer["emotion_dim"], layer["num_classes"],
                       layer["eps"])
    return None


def _reads(layers, i):
    """The indices layer i reads (-1: the network input); tfe.layers.inputs_of."""
    layer = layers[i]
    return list(layer["inputs"]) if "inputs" in layer else [layer.get("input", i - 1)]


class LayerNet(nn.Module):
    """The network a layer list describes, trainable. Layers the output (the last layer)
    does not depend on (a TFE model's branch classifiers) hold their tensors but never run."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.runs = [False] * len(layers)
        self.runs[-1] = True
        for i in range(len(layers) - 1, -1, -1):
            for j in _reads(layers, i) if self.runs[i] else ():
                if j >= 0:
                    self.runs[j] = True
        self.modules_of = []
        for layer in layers:
            m = _module(layer)
            if m is not None:
                *path, leaf = layer["name"].split(".")
                parent = self
                for part in path:
                    if part not in parent._modules:
                        parent.add_module(part, nn.Module())
                    parent = parent._modules[part]
                parent.add_module(leaf, m)
            self.modules_of.append(m)

    def forward(self, x):
        values = {-1: x}
        for i, layer in enumerate(self.layers):
            if self.runs[i]:
                values[i] = self._run(layer, self.modules_of[i],
                                      [values[j] for j in _reads(self.layers, i)])
        return values[len(self.layers) - 1]

    def _run(self, layer, m, xs):
        if m is not None:
            return m(*xs)
        kind, x = layer["kind"], xs[0]
        if kind == "relu":
            return F.relu(x)
        if kind == "maxpool2d":
            return F.max_pool2d(x, layer["kernel"], layer["stride"])
        if kind == "global_avg_pool":
            return x.mean((2, 3))
        if kind == "flatten":
            return x.flatten(1)
        if kind == "concat":
            return torch.cat(xs, 1)
        if kind == "dropout":
            return F.dropout(x, layer["p"], self.training)
        raise ValueError(f"[torch_models] unknown layer kind {kind!r}")


def build(layers: list) -> nn.Module:
    """The PyTorch twin of the network ``layers`` describes (``tfe.layers.describe(model)``,
    or the list a model file stores), freshly initialised."""
    return LayerNet(layers)


def torch_state_names(model: nn.Module) -> dict:
    """Name -> tensor of every parameter and buffer that corresponds to a tfe entry."""
    out = dict(model.named_parameters())
    out.update((n, b) for n, b in model.named_buffers()
               if not n.endswith("num_batches_tracked"))
    return out


def load_tfe_state(model: nn.Module, state: dict) -> nn.Module:
    """Copies tfe's ``state_dict()`` (name -> NumPy array) into the mirror, in place (on
    whatever device the mirror lives). Raises if any name or shape differs: a mirror that
    silently kept some of its own random weights would make every comparison meaningless."""
    own = torch_state_names(model)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"[load_tfe_state] names differ: only in torch {missing}, "
                       f"only in tfe {unexpected}")
    with torch.no_grad():
        for name, t in own.items():
            value = np.ascontiguousarray(state[name])
            if tuple(value.shape) != tuple(t.shape):
                raise ValueError(f"[load_tfe_state] {name}: shape {tuple(value.shape)} in tfe, "
                                 f"{tuple(t.shape)} in torch")
            t.copy_(torch.from_numpy(value).to(t.dtype))
        for name, b in model.named_buffers():
            if name.endswith("num_batches_tracked"):
                b.zero_()
    return model


def mirror(tfe_model, device=None) -> nn.Module:
    """The PyTorch twin of ``tfe_model`` with its current weights and train/eval mode."""
    from tfe.layers import describe  # the caller has tfe loaded already

    model = build(describe(tfe_model))
    if device is not None:
        model = model.to(device)
    load_tfe_state(model, tfe_model.state_dict())
    return model.train(tfe_model.training)


def named_for(tfe_model, torch_model, tfe_params) -> list:
    """The mirror's parameters corresponding to ``tfe_params`` (a list of tfe Parameters,
    e.g. one parameter group), in the same order."""
    names = {id(p): n for n, p in tfe_model.named_parameters()}
    own = dict(torch_model.named_parameters())
    return [own[names[id(p)]] for p in tfe_params]
