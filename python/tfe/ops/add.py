"""Element-wise sum of two same-shaped tensors."""

from .. import backend
from ..function import Function


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return backend.current().add_forward(a, b)

    @staticmethod
    def backward(ctx, dy):
        return dy, dy


def add(a, b):
    return Add.apply(a, b)
