"""TFE: DeepID (identity) and ResNet (emotion) side by side, their features batch-
normalised and concatenated into the 224-d Tandem Facial Expression feature, and a fully
connected layer over it (the fused TFE head). Built from two pre-trained networks (their
own classifiers are dropped) and fine-tuned end to end."""

from .. import nn
from .deepid import DeepID
from .resnet import ResNet


class TFE(nn.Module):
    def __init__(self, identity: DeepID, emotion: ResNet, num_classes=8):
        super().__init__()
        self.arch = {"name": "tfe", "identity": identity.arch, "emotion": emotion.arch,
                     "num_classes": num_classes}
        self.identity = identity
        self.emotion = emotion
        self.head = nn.TFEHead(identity.feature_dim, emotion.feature_dim, num_classes)

    def forward(self, x):
        return self.head(self.identity.features(x), self.emotion.features(x))

    def parameter_groups(self):
        """(identity-branch params, emotion-branch + head params): the paper trains the two
        at different learning rates."""
        ident = [p for name, p in self.named_parameters()
                 if name.startswith("identity.") and not name.startswith("identity.classifier")]
        rest = [p for name, p in self.named_parameters()
                if not name.startswith("identity.") and not name.startswith("emotion.fc.")]
        return ident, rest
