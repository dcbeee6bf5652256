"""Inverted dropout with a counter-based RNG that is bit-identical in C++, NumPy and CUDA.

All integer arithmetic is modulo 2**64:
    mix(z): z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB
            return z ^ (z >> 31)
    h = mix(mix(seed) + (i + 1) * 0x9E3779B97F4A7C15)
    u = float(h >> 40) * 2**-24                    (exact in float32, u in [0, 1))
Element i (the flat row-major index) is kept iff u >= p, with p rounded to float32 as the
kernels receive it. Kept: y = x / (1 - p), mask 1; dropped: y = 0, mask 0. p == 0 keeps
everything (y = x); p == 1 drops everything.
"""
import numpy as np

from .xp import get_array_module

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _mix_int(z):
    """mix() on one Python int (mod 2**64)."""
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def _mix_array(xp, z):
    """mix() on a uint64 array (NumPy/CuPy uint64 arithmetic wraps mod 2**64)."""
    u64 = xp.uint64
    z = (z ^ (z >> u64(30))) * u64(_M1)
    z = (z ^ (z >> u64(27))) * u64(_M2)
    return z ^ (z >> u64(31))


def _check_seed(seed):
    seed = int(seed)
    if not 0 <= seed <= _MASK64:
        raise ValueError(f"[dropout] seed must be in [0, 2**64), got {seed}")
    return seed


def dropout_uniform(seed, index):
    """float32 uniforms in [0, 1) for the counters `index` (uint64 array, any shape)."""
    xp = get_array_module(index)
    i = xp.asarray(index, dtype=xp.uint64)
    s = xp.uint64(_mix_int(_check_seed(seed)))
    h = _mix_array(xp, s + (i + xp.uint64(1)) * xp.uint64(_GOLDEN))
    return (h >> xp.uint64(40)).astype(xp.float32) * xp.float32(2.0 ** -24)


def _keep_divisor(p, dtype):
    """1 - p in the working dtype, from p rounded to float32 as the kernels receive it."""
    return dtype.type(1) - dtype.type(np.float32(p))


def _scaled(xp, keep, x, p):
    """x / (1 - p) where kept, else 0 (p == 1 keeps nothing and divides nothing)."""
    if np.float32(p) == 1:
        return xp.zeros_like(x)
    return xp.where(keep, x / _keep_divisor(p, x.dtype), x.dtype.type(0))


def dropout_forward(x, p, seed):
    """-> (y like x, mask uint8 like x): y = x / (1 - p) where kept, else 0."""
    xp = get_array_module(x)
    if not 0 <= p <= 1:
        raise ValueError(f"[dropout] p must be in [0, 1], got {p}")
    u = dropout_uniform(seed, xp.arange(x.size, dtype=xp.uint64)).reshape(x.shape)
    keep = u >= np.float32(p)
    y = _scaled(xp, keep, x, p)
    return y, keep.astype(xp.uint8)


def dropout_backward(dy, mask, p):
    """dx = dy / (1 - p) where mask == 1, else 0."""
    xp = get_array_module(dy, mask)
    return _scaled(xp, mask != 0, dy, p)
