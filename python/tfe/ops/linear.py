"""Fully connected layer y = x w^T + b as an autograd op."""

from .. import backend
from ..function import Function


class Linear(Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return backend.current().linear_forward(x, w, b)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved
        dx, dw, db = backend.current().linear_backward(dy, x, w,
                                                       compute_dx=ctx.needs_input_grad[0])
        return dx, dw, db if ctx.has_bias else None


def linear(x, w, b=None):
    return Linear.apply(x, w, b)
