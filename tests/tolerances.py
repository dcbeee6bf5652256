"""Per-op tolerances for comparing native float32 results with the float32 reference.

An element passes when  |native - ref| <= atol + rtol * |ref|  (assert_close below). The
reference runs in float32 too, so the table measures how far two correct float32
implementations of one formula may drift apart, not how far either is from the exact value.

Scale. The tests feed inputs that keep every compared quantity O(1): He-scaled weights,
upstream gradients scaled like those of a batch-mean loss (2^-e ~ 1/sqrt(reduction length),
so dw, db, dgamma, dbeta are O(1)), and a small activation gradient is compared after
multiplying native and reference alike by a power of two (exact, so relative errors are
unchanged; tests/helpers.py: pow2_scale, bn_dx_unit). That is what lets one absolute floor
per op serve all of its shapes, from 1x3 to the 8x16x48x48 paper layers.

Why the entries differ:

* Exact ops, (0, 0): relu, add, concat (selections and copies), sgd (elementwise, and the
  kernel evaluates the reference's float32 expression in the same order: bit-equal today; a
  kernel that fused multiply-adds would need 1 ulp here), dropout (compared bitwise in
  test_dropout.py: same draws, same single rounding of x / (1 - p)), maxpool's y and argmax.
  Any difference there is a bug.
* Reductions: the rounding error of a float32 sum of L terms is a few ulp * sqrt(L)
  (typically; L in the worst case) of the terms' size, and the reference (NumPy pairwise
  sums, OpenBLAS) and the kernels (blocked GEMM, double or per-thread partials) add in
  different orders.
  - conv2d: the forward reduces over C*k*k (<= 256 here), dw and db over N*Ho*Wo (18432 at
    8x16x48x48), dx over K*k*k. GEMM kernels also round differently through FMA.
  - gemm / linear: depth up to 600 (sgemm) and 960 (linear); dw, db reduce over the batch.
  - batchnorm / residual / tfe_head: statistics over N*H*W per channel; the input gradient
    is a cancellation, gamma*invstd*(dy - mean(dy) - x_hat*mean(dy*x_hat)), so its error is
    a few ulp of gamma*invstd*|dy| however small dx is (batch 2!). dx is therefore compared
    in units of gamma*invstd*|dy| per channel (bn_dx_unit), where this table applies.
    Largest observed use of the budget: the reference's own float32 mean (x - mean with
    |mean| ~ 4) in y.
  - gap: a mean over H*W <= 2304; the backward dy / (H*W) is one rounding.
  - maxpool backward: overlapping windows add up to k*k = 9 gradients per input element;
    the reference adds in float64 (bincount), the kernel in float32: ulp of the |dy| ~ 4.
  - cross_entropy: exp/log of libm vs NumPy differ by ~1 ulp; sums over K and the batch.

Each entry is ~5-10x the largest error observed over all tests of the op, in 4 runs: 2
threads, 1 thread, and the whole suite with TFE_GEMM_KERNEL=generic and =avx2 (the avx512
default included in the first two), on an AVX-512 Xeon. Observed maxima ("use" = largest
|native - ref| / (atol + rtol*|ref|), and the largest |native - ref|):

    op             atol   rtol   use    max |diff|   (where)
    relu, add,     0      0      0      0
    concat, sgd
    dropout        bitwise       0      0
    maxpool        2e-6   1e-6   0.13   9.5e-7       dx, 8x16x48x48 k3 s2 p1
    gap            3e-7   1e-6   0.18   2.4e-7       y
    cross_entropy  1e-7   1e-6   0.19   3.8e-6       use: soft dlogits; diff: loss ~ 30
    batchnorm      5e-6   5e-6   0.20   1.9e-6       y
    residual       5e-6   5e-6   0.12   1.9e-6       y
    tfe_head       1e-5   1e-5   0.20   2.9e-6       eval logits
    linear         1e-5   1e-5   0.15   2.0e-6       y, I = 960
    gemm           1e-5   1e-5   0.11   1.9e-6       K = 300 / 600
    conv2d         1e-5   1e-5   0.20   4.8e-6       y, 8x16x48x48 (|y| up to 7)

(A naive float32 triple-loop conv, summing dw over 18432 terms in plain sequential order,
used 0.58 of the conv2d entry: the table admits any sane summation order, not just the
current kernel's.)
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
