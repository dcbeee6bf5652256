"""ReLU: y = max(x, 0); the backward uses the forward output: dx = dy * (y > 0)."""
from .xp import get_array_module


def relu_forward(x):
    """y = max(x, 0), same shape and dtype as x."""
    xp = get_array_module(x)
    return xp.maximum(x, x.dtype.type(0))


def relu_backward(dy, y):
    """dx = dy where y > 0, else 0 (y is the forward output, so x need not be kept)."""
    xp = get_array_module(dy, y)
    return xp.where(y > 0, dy, dy.dtype.type(0))
