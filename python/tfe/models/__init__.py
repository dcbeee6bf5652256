"""The paper's networks: DeepID (identity), ResNet12/ResNet18 (emotion) and TFE (both,
merged through the TFE head)."""

from .deepid import DeepID
from .resnet import ResNet, resnet12, resnet18
from .tfe import TFE

ARCHITECTURES = {"deepid": DeepID, "resnet12": resnet12, "resnet18": resnet18}

__all__ = ["ARCHITECTURES", "DeepID", "ResNet", "TFE", "build", "resnet12", "resnet18"]


def build(arch: dict):
    """A fresh model from the ``arch`` dictionary stored in a model file."""
    name = arch.get("name")
    if name == "deepid":
        return DeepID(arch["num_identities"], arch.get("in_channels", 1), arch.get("dropout", 0.4))
    if name in ("resnet12", "resnet18", "resnet"):
        return ResNet(tuple(arch["blocks"]), arch["num_classes"], arch.get("in_channels", 1), name)
    if name == "tfe":
        return TFE(build(arch["identity"]), build(arch["emotion"]), arch["num_classes"])
    raise ValueError(f"[models.build] unknown architecture {name!r}")
