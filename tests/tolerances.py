"""Per-op tolerances for comparing native float32 results with the float32 reference.

An element passes when  |native - ref| <= atol + rtol * |ref|  (see assert_close). The
reference runs in float32 too, so the table measures how far two correct float32
implementations of the same formula may drift apart, not how far either is from the exact
value. The tests feed inputs that keep every output O(1) (He-scaled weights, batch-mean-
scaled upstream gradients; tests/helpers.py), so one absolute floor per op serves all of its
shapes. Each entry was set from the largest error observed over the op's tests (on the
avx512, avx2 and generic GEMM kernels, 1 and 2 threads) with a ~4-10x margin: a kernel that
sums in the wrong order is fine, one that drops a term or mis-indexes is off by O(1).

Why the entries differ:

* Exact ops, (0, 0): relu, add, concat, dropout, maxpool forward (assert_array_equal in the
  tests: the value is copied or selected, or - dropout - computed with the same single
  rounding as the reference). No summation, so any difference is a bug.
* float32 summation-order effects grow with the length L of each reduction: the rounding
  error of a sum of L terms is a few ulp * sqrt(L) typically (L in the worst case) times the
  size of the terms, and the reference (NumPy pairwise sums, OpenBLAS) and the kernels
  (blocked GEMM, per-thread partials) add in different orders.
  - conv2d: the forward reduces over C*k*k (up to 16*4*4 = 256 here); dw reduces over
    N*Ho*Wo (18432 at the 8x16x48x48 paper shape) and db likewise; dx over K*k*k/stride^2.
    GEMM-based ops also lose the last bits to FMA contraction. Largest entry of the table.
  - linear / gemm: reductions over I (up to ~600) or over the batch N for dw.
  - batchnorm / residual / tfe_head: mean and variance reduce over N*H*W per channel; the
    backward forms M*dy - sum(dy) - x_hat*sum(dy*x_hat), a cancellation of O(1) terms, so
    the error of dx is ~eps * M^(1/2) relative to the largest term, not to dx itself.
  - gap: a mean over H*W (<= 2304) - small; its backward is dy / (H*W), one rounding.
  - maxpool backward: overlapping windows scatter-add at most k*k = 9 gradients per input.
  - cross_entropy: exp/log from libm vs NumPy differ by ~1 ulp; sums over K classes and the
    batch mean over N.
  - sgd: elementwise, but "p - lr*d" with d from momentum/nesterov/weight decay, evaluated
    by the kernel in the same float32 order as the reference: expected exact, allowed 1 ulp.
"""
import atexit
import os

import numpy as np

# op stem -> (atol, rtol)
TOLERANCES = {
    "relu": (0.0, 0.0),
    "add": (0.0, 0.0),
    "concat": (0.0, 0.0),
    "dropout": (0.0, 0.0),
    "sgd": (0.0, 0.0),
    "maxpool": (2e-6, 1e-6),
    "gap": (3e-7, 1e-6),
    "cross_entropy": (1e-7, 1e-6),
    "batchnorm": (5e-6, 5e-6),
    "residual": (5e-6, 5e-6),
    "tfe_head": (1e-5, 1e-5),
    "linear": (1e-5, 1e-5),
    "gemm": (1e-5, 1e-5),
    "conv2d": (1e-5, 1e-5),
}

# Largest |native - ref| / (atol + rtol*|ref|) seen per op in this process ("use" of the
# tolerance; 1.0 = at the limit) and the largest absolute error, reported at exit when the
# environment variable TFE_TOL_REPORT names a file (used to set the table above;
# TFE_TOL_REPORT_DETAIL=1 breaks it down by compared quantity).
_OBSERVED = {}


def _record(op, name, use, err):
    key = (op, name) if os.environ.get("TFE_TOL_REPORT_DETAIL") else (op, "")
    u, e, where = _OBSERVED.get(key, (0.0, 0.0, ""))
    if use > u:
        u, where = use, name
    _OBSERVED[key] = (u, max(e, err), where)


def _report():
    path = os.environ.get("TFE_TOL_REPORT")
    if not path or not _OBSERVED:
        return
    with open(path, "a") as f:
        for (op, _), (u, e, where) in sorted(_OBSERVED.items()):
            f.write(f"{op}\t{u:.4g}\t{e:.4g}\t{where}\n")


atexit.register(_report)


def assert_close(native, ref, op, name=""):
    """|native - ref| <= atol + rtol * |ref| elementwise with the tolerance of `op`.

    Shapes must agree exactly; NaN/inf must not appear in either. For the exact ops (0, 0)
    this is bit equality up to the sign of zero.
    """
    atol, rtol = TOLERANCES[op]
    native = np.asarray(native)
    ref = np.asarray(ref)
    assert native.shape == ref.shape, f"{op} {name}: shape {native.shape} != {ref.shape}"
    assert native.dtype == ref.dtype, f"{op} {name}: dtype {native.dtype} != {ref.dtype}"
    a = native.astype(np.float64)
    r = ref.astype(np.float64)
    assert np.all(np.isfinite(r)), f"{op} {name}: reference has non-finite values"
    assert np.all(np.isfinite(a)), f"{op} {name}: native result has non-finite values"
    err = np.abs(a - r)
    bound = atol + rtol * np.abs(r)
    if err.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            use = np.where(err == 0, 0.0, err / np.where(bound == 0, 1e-300, bound))
        _record(op, name, float(use.max()), float(err.max()))
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(
            f"{op} {name}: {int(bad.sum())} of {err.size} elements differ beyond "
            f"atol={atol:g} rtol={rtol:g}; worst at {tuple(int(j) for j in i)}: "
            f"native={a[i]!r} ref={r[i]!r} |diff|={err[i]:.3g}; max |diff|={err.max():.3g}")
