"""Autograd: Functions with forward/backward and a saved context, recorded on a tape of
graph nodes, and a topological backward pass that accumulates gradients.

A Function's forward receives raw arrays (native tensors, or NumPy arrays on the
reference backend) and returns one array; its backward receives the output gradient and
returns one gradient per positional input (None where there is none). Graph nodes are
made only when grad mode is on and some input requires a gradient.
"""

import contextlib
import threading

from . import backend
from .tensor import Tensor, to_array

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is recorded (evaluation, optimiser steps)."""
    previous = is_grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


class Context:
    """What a Function's forward keeps for its backward."""

    __slots__ = ("saved", "needs_input_grad", "__dict__")

    def save_for_backward(self, *arrays):
        self.saved = arrays


class _Node:
    __slots__ = ("function", "ctx", "inputs")

    def __init__(self, function, ctx, inputs):
        self.function, self.ctx, self.inputs = function, ctx, inputs


class Function:
    """Subclass with ``forward(ctx, *args)`` and ``backward(ctx, grad)``; call ``apply``."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        ctx = Context()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        out = cls.forward(ctx, *raw)
        record = is_grad_enabled() and any(ctx.needs_input_grad)
        result = Tensor._wrap(out, requires_grad=record)
        if record:
            inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
            result._node = _Node(cls, ctx, inputs)
        return result


def _ones_like(array):
    import numpy as np

    from .tensor import device_of

    ones = to_array(np.ones(tuple(array.shape), np.float32))
    device = device_of(array)
    return ones.to(device) if device.is_cuda and hasattr(ones, "to") else ones


def _accumulate(current, grad):
    return grad if current is None else backend.current().add_forward(current, grad)


def _topological_order(root):
    """Tensors with graph nodes, each after every tensor that depends on it."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen or t._node is None:
            continue
        seen.add(id(t))
        stack.append((t, True))
        for inp in t._node.inputs:
            if inp is not None and inp._node is not None and id(inp) not in seen:
                stack.append((inp, False))
    order.reverse()
    return order


def backward(root: Tensor, grad=None):
    """Fills ``.grad`` of every leaf that requires it; frees the graph as it goes."""
    if not root.requires_grad:
        raise RuntimeError("[backward] this tensor does not require grad (no graph to run)")
    if grad is None:
        if root.shape not in ((), (1,)):
            raise RuntimeError(f"[backward] grad must be given for a non-scalar of shape {root.shape}")
        if root._node is not None and getattr(root._node.function, "accepts_float_grad", False):
            # A loss: its backward takes d(loss) as a number, so nothing is copied to the
            # device (a CUDA graph capture allows no host-to-device copy).
            grad = 1.0
        else:
            grad = _ones_like(root.data)
    elif isinstance(grad, Tensor):
        grad = grad.data
    if root._node is None:  # a leaf: its gradient is the seed itself
        root.grad = _accumulate(root.grad, grad)
        return
    grads = {id(root): grad}
    for t in _topological_order(root):
        g = grads.pop(id(t), None)
        node = t._node
        t._node = None  # the graph is used once
        if g is None:
            continue
        in_grads = node.function.backward(node.ctx, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for inp, ig in zip(node.inputs, in_grads):
            if inp is None or ig is None or not inp.requires_grad:
                continue
            if inp._node is None:
                inp.grad = _accumulate(inp.grad, ig)
            else:
                grads[id(inp)] = _accumulate(grads.get(id(inp)), ig)
