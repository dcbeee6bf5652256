"""Differentiable ops: one autograd Function per kernel family, each calling the current
backend (``tfe._native`` by default, ``tfe.reference`` for checking)."""

from .add import add
from .batchnorm import batch_norm
from .concat import concat
from .conv2d import conv2d
from .cosine_loss import cosine_loss
from .cross_entropy import cross_entropy
from .dropout import dropout
from .gap import global_avg_pool
from .linear import linear
from .maxpool import max_pool2d
from .relu import relu
from .residual import residual_epilogue
from .shape import flatten, reshape
from .tfe_head import tfe_head

__all__ = ["add", "batch_norm", "concat", "conv2d", "cosine_loss", "cross_entropy", "dropout", "flatten",
           "global_avg_pool", "linear", "max_pool2d", "relu", "reshape", "residual_epilogue",
           "tfe_head"]
