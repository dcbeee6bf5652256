"""PyTorch mirrors of tfe's networks (ResNet12/ResNet18, DeepID, TFE), layer for layer.

Every parameter and buffer has the name it has in tfe's ``state_dict()``, so a tfe model's
weights load into its mirror by name (``load_tfe_state``) and the two compute the same
function: the GPU benchmark times both from identical weights, and the tests check that
the mirrors' forward equals tfe's. The structure follows python/tfe/models/*.py and
python/tfe/nn/*.py; when those change, change this file with them.

    import torch_models
    tm = torch_models.mirror(tfe_model)           # built from tfe_model.arch, weights copied
    torch_models.load_tfe_state(tm, tfe_model.state_dict())   # copy again later

Only ``num_batches_tracked`` (a counter PyTorch's batch norm keeps and tfe does not) is
allowed to exist on one side only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STAGE_WIDTHS = (16, 32, 64)  # python/tfe/models/resnet.py
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # tfe's BatchNorm2d / TFEHead defaults (the same as torch's)


# ---------------------------------------------------------------------------------------------
# ResNet


class Block(nn.Module):
    """tfe's IdentityBlock (projection=False) or ProjectionBlock (projection=True):
    relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), shortcut = x or proj_bn(proj(x))."""

    def __init__(self, cin, cout, projection):
        super().__init__()
        stride = 2 if projection else 1
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, BN_EPS, BN_MOMENTUM)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, BN_EPS, BN_MOMENTUM)
        self.projection = projection
        if projection:
            self.proj = nn.Conv2d(cin, cout, 1, 2, 0, bias=False)
            self.proj_bn = nn.BatchNorm2d(cout, BN_EPS, BN_MOMENTUM)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        s = self.proj_bn(self.proj(x)) if self.projection else x
        return F.relu(self.bn2(self.conv2(h)) + s)


class ResNet(nn.Module):
    """tfe.models.ResNet: 3x3 stem + BN + ReLU, stages of widths 16/32/64 whose first
    block (after the first stage) is a projection block, global average pool, linear."""

    def __init__(self, blocks=(3, 3, 2), num_classes=8, in_channels=1):
        super().__init__()
        self.stem_conv = nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(STAGE_WIDTHS[0], BN_EPS, BN_MOMENTUM)
        layers, c = [], STAGE_WIDTHS[0]
        for stage, (width, count) in enumerate(zip(STAGE_WIDTHS, blocks)):
            for i in range(count):
                layers.append(Block(c, width, projection=stage > 0 and i == 0))
                c = width
        self.blocks = nn.Sequential(*layers)
        self.feature_dim = c
        self.fc = nn.Linear(c, num_classes)

    def features(self, x):
        h = F.relu(self.stem_bn(self.stem_conv(x)))
        return self.blocks(h).mean((2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


# ---------------------------------------------------------------------------------------------
# DeepID


class DeepID(nn.Module):
    """tfe.models.DeepID: four valid convolutions (with bias) and 2x2 max pools; the 160-d
    feature sees flatten(pool3) ++ flatten(conv4); dropout and the identity classifier
    follow (used only when the network is trained alone)."""

    feature_dim = 160

    def __init__(self, num_identities, in_channels=1, dropout=0.4):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 4)
        self.conv2 = nn.Conv2d(20, 40, 3)
        self.conv3 = nn.Conv2d(40, 60, 3)
        self.conv4 = nn.Conv2d(60, 80, 2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(60 * 4 * 4 + 80 * 3 * 3, self.feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.feature_dim, num_identities)

    def features(self, x):
        h = self.pool(F.relu(self.conv1(x)))
        h = self.pool(F.relu(self.conv2(h)))
        pool3 = self.pool(F.relu(self.conv3(h)))
        conv4 = F.relu(self.conv4(pool3))
        z = torch.cat([pool3.flatten(1), conv4.flatten(1)], 1)
        return F.relu(self.fc(z))

    def forward(self, x):
        return self.classifier(self.dropout(self.features(x)))


# ---------------------------------------------------------------------------------------------
# TFE


class TFEHead(nn.Module):
    """tfe.nn.TFEHead: BN1d over zi ++ ze (one 224-long vector per statistic, tfe's names),
    then a linear layer. F.batch_norm is used directly so that the buffers keep tfe's names
    (an nn.BatchNorm1d would nest them under a sub-module)."""

    def __init__(self, identity_dim=160, emotion_dim=64, num_classes=8, eps=BN_EPS,
                 momentum=BN_MOMENTUM):
        super().__init__()
        d = identity_dim + emotion_dim
        self.eps, self.momentum = eps, momentum
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


class TFE(nn.Module):
    """tfe.models.TFE: head(identity.features(x), emotion.features(x)). The branches' own
    classifiers (identity.classifier, emotion.fc) exist, as in tfe, but are not used."""

    def __init__(self, identity: DeepID, emotion: ResNet, num_classes=8):
        super().__init__()
        self.identity = identity
        self.emotion = emotion
        self.head = TFEHead(identity.feature_dim, emotion.feature_dim, num_classes)

    def forward(self, x):
        return self.head(self.identity.features(x), self.emotion.features(x))


# ---------------------------------------------------------------------------------------------
# building and loading


def build(arch: dict) -> nn.Module:
    """A mirror of ``tfe.models.build(arch)`` (``arch`` as stored in ``tfe_model.arch``)."""
    name = arch.get("name")
    if name == "deepid":
        return DeepID(arch["num_identities"], arch.get("in_channels", 1), arch.get("dropout", 0.4))
    if name in ("resnet12", "resnet18", "resnet"):
        return ResNet(tuple(arch["blocks"]), arch["num_classes"], arch.get("in_channels", 1))
    if name == "tfe":
        return TFE(build(arch["identity"]), build(arch["emotion"]), arch["num_classes"])
    raise ValueError(f"[torch_models.build] unknown architecture {name!r}")


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
    """The PyTorch mirror of ``tfe_model`` with its current weights and train/eval mode."""
    model = build(tfe_model.arch)
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
