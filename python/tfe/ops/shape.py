"""Views with another shape (free on contiguous data)."""

import numpy as np

from ..function import Function


def _reshape(a, shape):
    return a.reshape(list(shape)) if not isinstance(a, np.ndarray) else a.reshape(shape)


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = tuple(x.shape)
        return _reshape(x, shape)

    @staticmethod
    def backward(ctx, dy):
        return _reshape(dy, ctx.shape), None


def reshape(x, shape):
    return Reshape.apply(x, tuple(shape))


def flatten(x):
    """[N, ...] -> [N, prod(...)]."""
    return reshape(x, (x.shape[0], -1))
