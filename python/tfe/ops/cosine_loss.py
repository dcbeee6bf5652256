"""Cosine-distance loss against fixed targets, mean over the rows that have a target (the
distillation loss of tfe.distill; formulas in tfe.reference.cosine_loss).

It runs the reference on the host for every backend: the loss sees a [batch, 128]
projection, thousands of times less work than the network before it, so a device kernel
would save nothing measurable; on a GPU the two small arrays are copied to the host and
the gradient back (which is why a step with this loss is not recorded as a CUDA graph).
"""

import numpy as np

from .. import _native
from ..function import Function
from ..reference.cosine_loss import cosine_loss_backward, cosine_loss_forward
from ..tensor import Tensor, device_of, host
from .cross_entropy import _number


def _to_device(array, device):
    t = _native.as_tensor(np.ascontiguousarray(array))
    return t if device == "cpu" else t.to(device)


class CosineLoss(Function):
    accepts_float_grad = True

    @staticmethod
    def forward(ctx, pred, target, weight):
        p = np.array(host(pred), np.float32)
        t = np.array(host(target), np.float32)
        ctx.save_for_backward(p, t, weight, device_of(pred))
        loss = _native.as_tensor(np.array(cosine_loss_forward(p, t, weight), np.float32))
        return loss if device_of(pred) == "cpu" else loss.to(device_of(pred))

    @staticmethod
    def backward(ctx, dloss):
        p, t, weight, device = ctx.saved
        d = cosine_loss_backward(p, t, weight, _number(dloss))
        return _to_device(d, device), None, None


def cosine_loss(pred, target, weight=1.0):
    """``weight * mean_n (1 - cos(pred_n, target_n))`` over the rows n whose ``target`` row
    is not zero (0-d). ``target``: float32 [N, D], not differentiated."""
    t = target.data if isinstance(target, Tensor) else target
    return CosineLoss.apply(pred, t, float(weight))
