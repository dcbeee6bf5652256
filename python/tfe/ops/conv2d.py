"""conv2d as an autograd op (square kernel, stride, zero padding, optional bias)."""

from .. import backend
from ..function import Function


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, pad):
        ctx.save_for_backward(x, w)
        ctx.stride, ctx.pad, ctx.has_bias = stride, pad, b is not None
        return backend.current().conv2d_forward(x, w, b, stride, pad)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved
        dx, dw, db = backend.current().conv2d_backward(dy, x, w, ctx.stride, ctx.pad,
                                                       compute_dx=ctx.needs_input_grad[0],
                                                       compute_db=ctx.has_bias)
        return dx, dw, db, None, None


def conv2d(x, w, b=None, stride=1, pad=0):
    """y[N,K,Ho,Wo] = conv(x[N,C,H,W], w[K,C,k,k]) + b[K]."""
    return Conv2d.apply(x, w, b, stride, pad)
