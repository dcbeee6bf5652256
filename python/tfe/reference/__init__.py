"""NumPy/CuPy reference implementation of every tfe op: the executable specification.

Each function has the same name, arguments and return structure as its native counterpart
in tfe._native. Functions work in the dtype of their inputs (float32 in, float32 out) and
on NumPy or CuPy arrays (see get_array_module). Inputs are never modified, except the
running statistics of the training-mode batch-norm forwards and sgd_step's params and
momentum buffers, which are specified as in place.
"""
from .add import add_forward
from .batchnorm import batchnorm_backward, batchnorm_forward_eval, batchnorm_forward_train
from .concat import concat_backward, concat_forward
from .conv2d import conv2d_backward, conv2d_forward
from .cosine_loss import cosine_loss_backward, cosine_loss_forward
from .cross_entropy import (cross_entropy_backward, cross_entropy_forward,
                            cross_entropy_soft_backward, cross_entropy_soft_forward)
from .dropout import dropout_backward, dropout_forward, dropout_uniform
from .gap import gap_backward, gap_forward
from .linear import linear_backward, linear_forward
from .maxpool import maxpool2d_backward, maxpool2d_forward
from .relu import relu_backward, relu_forward
from .residual import residual_backward, residual_forward_eval, residual_forward_train
from .sgd import sgd_step
from .tfe_head import tfe_head_backward, tfe_head_forward_eval, tfe_head_forward_train
from .xp import get_array_module

__all__ = [
    "get_array_module",
    "conv2d_forward", "conv2d_backward",
    "batchnorm_forward_train", "batchnorm_forward_eval", "batchnorm_backward",
    "relu_forward", "relu_backward",
    "add_forward",
    "maxpool2d_forward", "maxpool2d_backward",
    "gap_forward", "gap_backward",
    "linear_forward", "linear_backward",
    "dropout_uniform", "dropout_forward", "dropout_backward",
    "concat_forward", "concat_backward",
    "cosine_loss_forward", "cosine_loss_backward",
    "cross_entropy_forward", "cross_entropy_backward",
    "cross_entropy_soft_forward", "cross_entropy_soft_backward",
    "sgd_step",
    "residual_forward_train", "residual_forward_eval", "residual_backward",
    "tfe_head_forward_train", "tfe_head_forward_eval", "tfe_head_backward",
]
