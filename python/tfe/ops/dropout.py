"""Inverted dropout with a counter-based, seeded mask (identical on every device)."""

from .. import backend
from ..function import Function


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, p, seed):
        y, mask = backend.current().dropout_forward(x, p, seed)
        ctx.save_for_backward(mask)
        ctx.p = p
        return y

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved
        return backend.current().dropout_backward(dy, mask, ctx.p), None, None


def dropout(x, p, seed, training=True):
    """Identity when not training or p == 0."""
    if not training or p == 0:
        return x
    return Dropout.apply(x, p, seed)
