"""The paper's networks: DeepID (identity), ResNet12/ResNet18 (emotion) and TFE (both,
merged through the TFE head)."""

from .deepid import DeepID
from .given_identity import GivenIdentityTFE
from .resnet import ResNet, resnet12, resnet18
from .tfe import TFE

ARCHITECTURES = {"deepid": DeepID, "resnet12": resnet12, "resnet18": resnet18}

__all__ = ["ARCHITECTURES", "DeepID", "GivenIdentityTFE", "ResNet", "TFE", "build", "resnet12", "resnet18"]


def build(arch: dict, input_size=48):
    """A fresh model from the ``arch`` dictionary stored in a model file (checked first by
    tfe.model_reader.validate_model) for square inputs of ``input_size``."""
    name = arch.get("name")
    if name == "deepid":
        return DeepID(arch["num_identities"], arch.get("in_channels", 1), arch.get("dropout", 0.4),
                      input_size=input_size)
    if name in ("resnet12", "resnet18", "resnet"):
        return ResNet(tuple(arch["blocks"]), arch["num_classes"], arch.get("in_channels", 1), name)
    if name == "tfe":
        return TFE(build(arch["identity"], input_size), build(arch["emotion"], input_size),
                   arch["num_classes"])
    raise ValueError(f"[models.build] unknown architecture {name!r}")
