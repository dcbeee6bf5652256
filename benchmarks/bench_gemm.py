"""tfe's GEMM core (native.sgemm): 1024^3 and the per-image GEMMs of the ResNet18 convs.

extra_info: GFLOP/s and % of the FMA peak measured on this machine at the same thread
count (native.fma_peak_gflops), plus the micro-kernel in use. The small conv GEMMs are
measured through the Python binding, which allocates and zeroes C each call: a few
microseconds that matter at the smallest shapes (test_sgemm_call_overhead measures them).
"""

import numpy as np
import pytest

import shapes

CASES = [("square_%dx%dx%d" % shapes.GEMM_SQUARE, *shapes.GEMM_SQUARE, False, False)]
CASES += shapes.conv_gemm_shapes(shapes.RESNET18_CONVS)


def _operands(randn, m, n, k, ta, tb):
    a = randn(*((k, m) if ta else (m, k)))
    b = randn(*((n, k) if tb else (k, n)))
    return a, b


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_sgemm(benchmark, native, fma_peak, throughput, randn, case):
    name, m, n, k, ta, tb = case
    a, b = _operands(randn, m, n, k, ta, tb)
    benchmark.group = "sgemm"
    c = benchmark(native.sgemm, a, b, ta, tb)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert np.abs(np.asarray(c) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()) * k ** 0.5
    throughput(benchmark, flops=2 * m * n * k, peak=fma_peak, mnk=[m, n, k],
               trans=[ta, tb], kernel=native.gemm_kernel())


def test_sgemm_call_overhead(benchmark, native, randn):
    """1x1x1: the fixed cost of one binding call (validation, allocation, GIL release)."""
    a, b = randn(1, 1), randn(1, 1)
    benchmark.group = "sgemm"
    benchmark(native.sgemm, a, b, False, False)
