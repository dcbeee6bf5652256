"""Concatenation along axis 1 (channels/features) and its inverse split."""
from .xp import get_array_module


def concat_forward(xs):
    """xs: list of [N, C_j, ...] with equal N and trailing dims -> y [N, sum_j C_j, ...]."""
    xp = get_array_module(*xs)
    return xp.concatenate(list(xs), axis=1)


def concat_backward(dy, sizes):
    """dy [N, sum_j C_j, ...] -> list of dx_j [N, C_j, ...] (contiguous copies)."""
    xp = get_array_module(dy)
    if sum(sizes) != dy.shape[1]:
        raise ValueError(f"[concat] sizes {list(sizes)} do not sum to {dy.shape[1]}")
    out, c0 = [], 0
    for c in sizes:
        out.append(xp.ascontiguousarray(dy[:, c0:c0 + c]))
        c0 += c
    return out
