"""Modules in the style PyTorch users know, on tfe's autograd ops."""

from .module import Module, Sequential
from .layers import (BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear,
                     MaxPool2d, ReLU)
from .blocks import IdentityBlock, ProjectionBlock
from .head import TFEHead

__all__ = ["BatchNorm1d", "BatchNorm2d", "Conv2d", "Dropout", "Flatten", "GlobalAvgPool",
           "IdentityBlock", "Linear", "MaxPool2d", "Module", "ProjectionBlock", "ReLU",
           "Sequential", "TFEHead"]
