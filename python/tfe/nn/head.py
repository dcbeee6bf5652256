"""The TFE head: BN1d(Z_identity) ++ BN1d(Z_emotion) -> FC -> class scores (fused kernel).

Batch norm is per feature, so BN1d over the 224 concatenated features is exactly the two
separate BNs of the paper; the parameters are kept as one 224-long vector per statistic.
"""

import math

import numpy as np

from .. import ops, random
from .module import Module, parameter


class TFEHead(Module):
    def __init__(self, identity_dim=160, emotion_dim=64, num_classes=8, eps=1e-5, momentum=0.1):
        super().__init__()
        d = identity_dim + emotion_dim
        self.identity_dim, self.emotion_dim = identity_dim, emotion_dim
        self.eps, self.momentum = eps, momentum
        self.bn_weight = parameter(np.ones(d))
        self.bn_bias = parameter(np.zeros(d))
        self.register_buffer("running_mean", np.zeros(d, np.float32))
        self.register_buffer("running_var", np.ones(d, np.float32))
        bound = 1.0 / math.sqrt(d)
        g = random.generator()
        self.weight = parameter(g.uniform(-bound, bound, (num_classes, d)))
        self.bias = parameter(g.uniform(-bound, bound, num_classes))

    def forward(self, z_identity, z_emotion):
        return ops.tfe_head(z_identity, z_emotion, self.bn_weight, self.bn_bias,
                            self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.eps, self.momentum)
