"""Fully connected layer: y = x w^T + b, x [N, I], w [O, I] (PyTorch layout), b [O] or None."""


def linear_forward(x, w, b):
    """y[n, o] = sum_i x[n, i] * w[o, i] + b[o]  -> y [N, O]."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"[linear] x {x.shape} and w {w.shape} do not fit")
    y = x @ w.T
    if b is not None:
        y = y + b
    return y


def linear_backward(dy, x, w, compute_dx=True):
    """dy [N, O] -> (dx = dy w [N, I], dw = dy^T x [O, I], db = sum_n dy [O]);
    dx is None when not ``compute_dx``."""
    return (dy @ w) if compute_dx else None, dy.T @ x, dy.sum(axis=0)
