"""Max pooling (square window) as an autograd op."""

from .. import backend
from ..function import Function


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, k, stride, pad):
        y, argmax = backend.current().maxpool2d_forward(x, k, stride, pad)
        ctx.save_for_backward(argmax)
        ctx.hw = x.shape[2], x.shape[3]
        return y

    @staticmethod
    def backward(ctx, dy):
        (argmax,) = ctx.saved
        return backend.current().maxpool2d_backward(dy, argmax, *ctx.hw), None, None, None


def max_pool2d(x, k, stride=None, pad=0):
    return MaxPool2d.apply(x, k, k if stride is None else stride, pad)
