"""Layers: Conv2d, BatchNorm2d/1d, ReLU, MaxPool2d, Dropout, Linear, GlobalAvgPool, Flatten.

Initialisation follows PyTorch's ResNet recipe (He-normal, fan-out, for convolutions;
uniform ±1/sqrt(fan_in) for linear layers; BN weight 1, bias 0), drawn from
``tfe.random.generator()`` so a seed fixes the model.
"""

import math

import numpy as np

from .. import ops, random
from .module import Module, parameter


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.stride, self.padding = stride, padding
        fan_out = out_channels * kernel_size * kernel_size
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = parameter(random.generator().normal(0, math.sqrt(2.0 / fan_out), shape))
        self.bias = parameter(np.zeros(out_channels)) if bias else None

    def forward(self, x):
        return ops.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class _BatchNorm(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = parameter(np.ones(num_features))
        self.bias = parameter(np.zeros(num_features))
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.ones(num_features, np.float32))

    def forward(self, x):
        return ops.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                              self.training, self.eps, self.momentum)

    def forward_relu(self, x):
        """relu(self(x)) in one pass over the activations (the fused epilogue without a
        shortcut), forward and backward: the same bits, one read and one write fewer."""
        return ops.residual_epilogue(x, None, self.weight, self.bias, self.running_mean,
                                     self.running_var, self.training, self.eps, self.momentum)


class BatchNorm2d(_BatchNorm):
    """Per-channel normalisation of [N, C, H, W]."""


class BatchNorm1d(_BatchNorm):
    """Per-feature normalisation of [N, C]."""


class ReLU(Module):
    def forward(self, x):
        return ops.relu(x)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.k, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return ops.max_pool2d(x, self.k, self.stride, self.padding)


class Dropout(Module):
    """Inverted dropout; each call draws a fresh mask from (seed, call count)."""

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        self.p, self.seed, self.calls = p, seed, 0

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        self.calls += 1
        return ops.dropout(x, self.p, (self.seed * 1_000_003 + self.calls) % 2**64)


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        g = random.generator()
        self.weight = parameter(g.uniform(-bound, bound, (out_features, in_features)))
        self.bias = parameter(g.uniform(-bound, bound, out_features)) if bias else None

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)


class GlobalAvgPool(Module):
    def forward(self, x):
        return ops.global_avg_pool(x)


class Flatten(Module):
    def forward(self, x):
        return ops.flatten(x)
