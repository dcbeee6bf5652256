"""Concatenation along dimension 1 of tensors [N, C_j, ...]."""

from .. import backend
from ..function import Function


class Concat(Function):
    @staticmethod
    def forward(ctx, *xs):
        ctx.sizes = [x.shape[1] for x in xs]
        return backend.current().concat_forward(list(xs))

    @staticmethod
    def backward(ctx, dy):
        return tuple(backend.current().concat_backward(dy, ctx.sizes))


def concat(xs):
    return Concat.apply(*xs)
