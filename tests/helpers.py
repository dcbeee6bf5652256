"""Shared helpers of the native-vs-reference op tests (test_<op>.py).

Inputs are float32 with magnitudes that keep every output O(1) (weights scaled like He
initialisation, upstream gradients like those of a batch-mean loss), so one absolute +
relative tolerance per op (tests/tolerances.py) fits every shape of that op.
"""
import contextlib

import numpy as np
import pytest

import tfe


def randn(rng, *shape, scale=1.0, shift=0.0):
    """float32 normal samples, N(shift, scale^2)."""
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


def uniform(rng, *shape, low=0.0, high=1.0):
    return rng.uniform(low, high, shape).astype(np.float32)


def distinct(rng, *shape):
    """float32 values that are pairwise different (no ties for max pooling), in [-1, 1)."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) / n * 2).astype(np.float32).reshape(shape)


def nat(t):
    """A native result as a NumPy array (no copy); None stays None."""
    return None if t is None else np.asarray(t)


@contextlib.contextmanager
def num_threads(n):
    """Run the CPU kernels with n threads, restoring the previous count afterwards."""
    old = tfe.get_num_threads()
    tfe.set_num_threads(n)
    try:
        yield
    finally:
        tfe.set_num_threads(old)


def raises(op, match=""):
    """pytest.raises for the bindings' error contract: ValueError("[op] message")."""
    return pytest.raises(ValueError, match=r"^\[" + op + r"\] " + match)


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def noncontig(a):
    """A non-C-contiguous view with a's shape and values (every other element of a 2x copy)."""
    big = np.repeat(a[..., None], 2, axis=-1)
    v = big[..., 0]
    assert not v.flags.c_contiguous or a.size <= 1
    return v


def ids(cases):
    """Readable pytest ids for tuples of shape parameters."""
    return ["-".join(str(v) for v in c) for c in cases]


def pow2_scale(count):
    """2^-e with 2^e ~ sqrt(count): scales an upstream gradient so that a sum of `count`
    products with O(1) inputs is O(1). Being a power of two, multiplying a result by
    1 / pow2_scale(count) is exact, which lets a test look at a small gradient at O(1) scale
    without changing its relative errors."""
    return 2.0 ** -round(np.log2(np.sqrt(max(count, 1))))


def bn_dx_unit(gamma, invstd, g, ndim):
    """Per-channel power of two ~ |gamma| * invstd * g, shaped to broadcast over a batch-norm
    input of rank ndim.

    The batch-norm input gradient is a cancellation, dx = gamma*invstd * (dy - mean(dy) -
    x_hat * mean(dy * x_hat)), whose float32 rounding error is a few ulp of gamma*invstd*|dy|
    however small dx itself comes out (e.g. batch 2, where dx ~ eps/var * that). Dividing
    dx by this unit (exactly: a power of two) measures it on that natural scale, so one
    tolerance covers well- and ill-conditioned channels alike."""
    a = np.abs(np.asarray(gamma, np.float64)) * np.asarray(invstd, np.float64) * g
    unit = (2.0 ** np.round(np.log2(np.maximum(a, 1e-30)))).astype(np.float32)
    return unit.reshape((1, -1) + (1,) * (ndim - 2))
