"""TFE with a given identity feature: the TFE head over a per-image vector that comes with
the data (a frozen face teacher's descriptor) and the ResNet's feature.

It measures how much identity information can help at best (the teacher learned from
millions of faces), and, fed the descriptor of *another* image of the same person, whether
a gain comes from knowing who the person is or from expression cues inside the identity
feature. Not deployable on its own: at inference it needs the teacher, which tfe's engine
does not run.
"""

from .. import nn
from ..tensor import Tensor
from .resnet import ResNet


class GivenIdentityTFE(nn.Module):
    takes_side_input = True  # forward(x, side): the training and evaluation loops pass it

    def __init__(self, emotion: ResNet, identity_dim, num_classes=8):
        super().__init__()
        self.arch = {"name": "tfe_given_identity", "identity_dim": int(identity_dim),
                     "emotion": emotion.arch, "num_classes": num_classes}
        self.emotion = emotion
        self.head = nn.TFEHead(identity_dim, emotion.feature_dim, num_classes)

    def forward(self, x, side):
        side = side if isinstance(side, Tensor) else Tensor(side)
        return self.head(side, self.emotion.features(x))

    def parameter_groups(self):
        """([], emotion branch + head): the given feature has no parameters."""
        return [], [p for name, p in self.named_parameters() if not name.startswith("emotion.fc.")]
