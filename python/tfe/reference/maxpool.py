"""2-D max pooling, square window k, stride, implicit -inf padding pad (floor mode), NCHW.

Shapes: x [N, C, H, W] -> y [N, C, Ho, Wo], Ho = (H + 2*pad - k) // stride + 1 (same for Wo).
    y[n, c, i, j] = max over p, q in [0, k) of x[n, c, i*stride - pad + p, j*stride - pad + q]
(positions outside the plane are padding and never chosen).
argmax[n, c, i, j] (int32) = h*W + w, the flat index within the [H, W] input plane of the
chosen element. Ties: the first maximum in row-major window order (p, then q) wins.
Backward: dx[n, c].flat[argmax[n, c, i, j]] += dy[n, c, i, j] (overlapping windows add up).
"""
from .xp import get_array_module


def maxpool2d_forward(x, k, stride, pad):
    """-> (y [N, C, Ho, Wo] like x, argmax int32 [N, C, Ho, Wo]). Requires pad <= k // 2."""
    xp = get_array_module(x)
    if x.ndim != 4:
        raise ValueError(f"[maxpool] x must be [N, C, H, W], got shape {x.shape}")
    if k < 1 or stride < 1 or pad < 0 or pad > k // 2:
        raise ValueError("[maxpool] need k >= 1, stride >= 1 and 0 <= pad <= k // 2")
    N, C, H, W = x.shape
    Ho = (H + 2 * pad - k) // stride + 1
    Wo = (W + 2 * pad - k) // stride + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"[maxpool] window {k} with pad {pad} does not fit input {H}x{W}")
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-xp.inf)
    best = xp.full((N, C, Ho, Wo), -xp.inf, dtype=x.dtype)
    idx = xp.full((N, C, Ho, Wo), -1, dtype=xp.int32)
    for p in range(k):                          # row-major window order: first max wins
        hs = xp.arange(Ho) * stride - pad + p   # input rows seen at offset p
        for q in range(k):
            ws = xp.arange(Wo) * stride - pad + q
            valid = ((hs >= 0) & (hs < H))[:, None] & ((ws >= 0) & (ws < W))[None, :]
            v = xpad[:, :, p:p + stride * (Ho - 1) + 1:stride, q:q + stride * (Wo - 1) + 1:stride]
            take = valid & ((idx < 0) | (v > best))
            best = xp.where(take, v, best)
            idx = xp.where(take, (hs[:, None] * W + ws[None, :]).astype(xp.int32), idx)
    return best, idx


def maxpool2d_backward(dy, argmax, H, W):
    """dy [N, C, Ho, Wo], argmax int32 [N, C, Ho, Wo] -> dx [N, C, H, W] (scatter-add)."""
    xp = get_array_module(dy, argmax)
    N, C = dy.shape[:2]
    plane = (xp.arange(N * C, dtype=xp.int64) * (H * W)).reshape(N * C, 1)
    flat = (argmax.reshape(N * C, -1).astype(xp.int64) + plane).ravel()
    dx = xp.bincount(flat, weights=dy.ravel(), minlength=N * C * H * W)
    return dx.astype(dy.dtype).reshape(N, C, H, W)
