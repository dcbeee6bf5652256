"""2-D convolution (cross-correlation, as PyTorch's Conv2d), square kernel, NCHW.

Shapes: x [N, C, H, W], w [K, C, k, k] (OIHW), b [K] or None, y [N, K, Ho, Wo] with
    Ho = (H + 2*pad - k) // stride + 1,  Wo = (W + 2*pad - k) // stride + 1
(symmetric zero padding; trailing rows/columns that do not fill a window are ignored).

    y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] * xpad[n, c, i*stride + p, j*stride + q]

Implementation: im2col. A strided view of the padded input gives the [C*k*k, Ho*Wo]
patch matrix of each image; the convolution is then one matrix product per image. The
batch is processed in chunks so the patch matrix stays below ~16M elements.
"""
from .xp import get_array_module

_CHUNK_ELEMS = 1 << 24


def _out_size(H, W, k, stride, pad):
    Ho = (H + 2 * pad - k) // stride + 1
    Wo = (W + 2 * pad - k) // stride + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"[conv2d] kernel {k} with pad {pad} does not fit input {H}x{W}")
    return Ho, Wo


def _check(x, w, stride, pad):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError("[conv2d] x must be [N, C, H, W] and w [K, C, k, k]")
    if w.shape[1] != x.shape[1] or w.shape[2] != w.shape[3]:
        raise ValueError(f"[conv2d] weight {w.shape} does not fit input {x.shape}")
    if stride < 1 or pad < 0:
        raise ValueError("[conv2d] stride must be >= 1 and pad >= 0")


def _pad(xp, x, pad):
    if pad == 0:
        return xp.ascontiguousarray(x)
    return xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _im2col(xp, xpad, k, stride, Ho, Wo):
    """[n, C, Hp, Wp] padded input -> patch matrix [n, C*k*k, Ho*Wo] (a copy).

    Row (c, p, q) of image n holds xpad[n, c, i*stride + p, j*stride + q] over (i, j).
    """
    n, C = xpad.shape[:2]
    sN, sC, sH, sW = xpad.strides
    view = xp.lib.stride_tricks.as_strided(
        xpad, shape=(n, C, k, k, Ho, Wo),
        strides=(sN, sC, sH, sW, stride * sH, stride * sW))
    return view.reshape(n, C * k * k, Ho * Wo)


def _chunk(C, k, P):
    return max(1, _CHUNK_ELEMS // max(1, C * k * k * P))


def conv2d_forward(x, w, b, stride, pad):
    """y = conv2d(x, w) + b.  x [N, C, H, W], w [K, C, k, k], b [K] or None -> y [N, K, Ho, Wo]."""
    xp = get_array_module(x, w, b)
    _check(x, w, stride, pad)
    N, C, H, W = x.shape
    K, k = w.shape[0], w.shape[2]
    Ho, Wo = _out_size(H, W, k, stride, pad)
    w2 = w.reshape(K, C * k * k)
    y = xp.empty((N, K, Ho * Wo), dtype=x.dtype)
    step = _chunk(C, k, Ho * Wo)
    for n0 in range(0, N, step):
        cols = _im2col(xp, _pad(xp, x[n0:n0 + step], pad), k, stride, Ho, Wo)
        y[n0:n0 + step] = w2 @ cols                       # [n, K, Ho*Wo]
    if b is not None:
        y += b.reshape(1, K, 1)
    return y.reshape(N, K, Ho, Wo)


def conv2d_backward(dy, x, w, stride, pad, compute_dx=True, compute_db=True):
    """Gradients of conv2d_forward.  dy [N, K, Ho, Wo] -> (dx [N,C,H,W], dw [K,C,k,k], db [K]);
    dx is None when not ``compute_dx`` (a first layer needs no input gradient), db is None
    when not ``compute_db`` (a convolution without bias).

        db[o]          = sum_{n,i,j} dy[n, o, i, j]
        dw[o, c, p, q] = sum_{n,i,j} dy[n, o, i, j] * xpad[n, c, i*stride + p, j*stride + q]
        dx[n, c, h, v] = sum over (o, p, q, i, j) with i*stride + p - pad = h and
                         j*stride + q - pad = v of w[o, c, p, q] * dy[n, o, i, j]
    (col2im: the patch-matrix gradient w^T dy is scattered back onto the padded input, one
    strided slice per kernel offset (p, q), and the padding is cut off.)
    """
    xp = get_array_module(dy, x, w)
    _check(x, w, stride, pad)
    N, C, H, W = x.shape
    K, k = w.shape[0], w.shape[2]
    Ho, Wo = _out_size(H, W, k, stride, pad)
    if dy.shape != (N, K, Ho, Wo):
        raise ValueError(f"[conv2d] dy {dy.shape} != {(N, K, Ho, Wo)}")
    w2 = w.reshape(K, C * k * k)
    dy3 = dy.reshape(N, K, Ho * Wo)
    db = dy.sum(axis=(0, 2, 3)) if compute_db else None
    dw2 = xp.zeros((K, C * k * k), dtype=x.dtype)
    dx = xp.empty_like(x) if compute_dx else None
    step = _chunk(C, k, Ho * Wo)
    for n0 in range(0, N, step):
        xc, dyc = x[n0:n0 + step], dy3[n0:n0 + step]
        n = xc.shape[0]
        cols = _im2col(xp, _pad(xp, xc, pad), k, stride, Ho, Wo)
        dw2 += xp.tensordot(dyc, cols, axes=([0, 2], [0, 2]))     # [K, C*k*k]
        if not compute_dx:
            continue
        dcols = (w2.T @ dyc).reshape(n, C, k, k, Ho, Wo)
        dxpad = xp.zeros((n, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
        for p in range(k):
            for q in range(k):
                dxpad[:, :, p:p + stride * (Ho - 1) + 1:stride,
                      q:q + stride * (Wo - 1) + 1:stride] += dcols[:, :, p, q]
        dx[n0:n0 + step] = dxpad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw2.reshape(w.shape), db
