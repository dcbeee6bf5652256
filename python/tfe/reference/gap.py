"""Global average pooling: y[n, c] = (1 / (H*W)) sum_{h,w} x[n, c, h, w]."""
from .xp import get_array_module


def gap_forward(x):
    """x [N, C, H, W] -> y [N, C]."""
    if x.ndim != 4:
        raise ValueError(f"[gap] x must be [N, C, H, W], got shape {x.shape}")
    return x.mean(axis=(2, 3))


def gap_backward(dy, H, W):
    """dy [N, C] -> dx [N, C, H, W] with dx[n, c, h, w] = dy[n, c] / (H*W)."""
    xp = get_array_module(dy)
    N, C = dy.shape
    dx = xp.empty((N, C, H, W), dtype=dy.dtype)
    dx[...] = (dy / (H * W))[:, :, None, None]
    return dx
