"""tfe's GEMM core (tfe._native.sgemm) against NumPy matmul, and the micro-kernel fallbacks.

All four transpose combinations on odd sizes and on sizes that cross the cache-blocking
boundaries (depth 256, row blocks of 96-192, column blocks of 2048-3072, register tiles of
4-8 x 8-48). The engine picks avx512/avx2/generic at start-up and honours
TFE_GEMM_KERNEL=generic|avx2|avx512 (never above what the CPU has); the subprocess tests
force each lower kernel and check sgemm, conv2d and linear against the reference there.
"""
import textwrap

import numpy as np
import pytest

from helpers import nat, noncontig, num_threads, raises, randn, run_child
from tfe import _native as native
from tolerances import assert_close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


# (M, N, K)
SIZES = [(1, 1, 1), (1, 7, 3), (5, 1, 13), (5, 13, 3), (13, 5, 7), (4, 48, 16), (9, 49, 17),
         (33, 65, 129), (97, 101, 257), (200, 50, 300), (3, 3100, 5), (193, 7, 600)]
KERNELS = ["generic", "avx2", "avx512"]


def _operands(rng, M, N, K, ta, tb):
    a = randn(rng, M, K)
    b = randn(rng, K, N, scale=1 / np.sqrt(K))  # C entries are O(1)
    return (a, np.ascontiguousarray(a.T) if ta else a), (b, np.ascontiguousarray(b.T) if tb else b)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("size", SIZES, ids=["M{}N{}K{}".format(*s) for s in SIZES])
def test_sgemm_matches_numpy(rng, size, ta, tb):
    M, N, K = size
    (a, a_in), (b, b_in) = _operands(rng, M, N, K, ta, tb)
    c = nat(native.sgemm(a_in, b_in, ta, tb))
    assert c.shape == (M, N) and c.dtype == np.float32
    assert_close(c, a @ b, "gemm", "C")


def test_sgemm_alpha_and_defaults(rng):
    (a, _), (b, _) = _operands(rng, 13, 29, 31, False, False)
    assert_close(nat(native.sgemm(a, b, alpha=-0.75)), np.float32(-0.75) * (a @ b), "gemm", "alpha")
    np.testing.assert_array_equal(nat(native.sgemm(a, b)),
                                  nat(native.sgemm(a, b, False, False, 1.0)))


def test_sgemm_deterministic_and_thread_count_independent(rng):
    (a, _), (b, _) = _operands(rng, 300, 400, 500, False, False)
    with num_threads(2):
        c1, c2 = nat(native.sgemm(a, b)).copy(), nat(native.sgemm(a, b)).copy()
    np.testing.assert_array_equal(c1, c2)
    with num_threads(1):
        c3 = nat(native.sgemm(a, b)).copy()
    assert_close(c3, c1, "gemm", "1 vs 2 threads")
    assert_close(c1, a @ b, "gemm", "C")


def test_kernel_name_and_peak():
    assert native.gemm_kernel() in KERNELS
    assert native.fma_peak_gflops(1) > 0
    with raises("fma_peak_gflops", "threads must be >= 1"):
        native.fma_peak_gflops(0)


@pytest.mark.parametrize("call,match", [
    (lambda a, b: native.sgemm(a, b[:4].copy()), "inner dimensions differ"),
    (lambda a, b: native.sgemm(a, b, True, False), "inner dimensions differ"),
    (lambda a, b: native.sgemm(a.astype(np.float64), b), "a: "),
    (lambda a, b: native.sgemm(a, b.astype(np.int32)), "b: expected float32"),
    (lambda a, b: native.sgemm(a[None], b), "a: expected 2-d"),
    (lambda a, b: native.sgemm(a, b[0]), "b: expected 2-d"),
    (lambda a, b: native.sgemm(noncontig(a), b), "a: array is not C-contig"),
    (lambda a, b: native.sgemm(a, None), "b: required"),
], ids=["inner", "inner transposed", "float64", "int32", "a rank 3", "b rank 1",
        "non-contiguous", "None"])
def test_sgemm_rejects(rng, call, match):
    with raises("sgemm", match):
        call(randn(rng, 3, 5), randn(rng, 5, 7))


# ---- forced micro-kernels, each in a fresh process (the choice is made once at start-up) ----

_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import tfe.reference as ref
    from tfe import _native as native
    from tolerances import assert_close

    want = sys.argv[1]
    assert native.gemm_kernel() == want, (native.gemm_kernel(), want)
    rng = np.random.default_rng(7)
    f32 = lambda *s, scale=1.0: (rng.standard_normal(s) * scale).astype(np.float32)
    for M, N, K in [(1, 1, 1), (5, 13, 3), (9, 49, 17), (97, 101, 257), (200, 50, 300),
                    (3, 3100, 5)]:
        for ta in (False, True):
            for tb in (False, True):
                a, b = f32(M, K), f32(K, N, scale=K ** -0.5)
                c = native.sgemm(np.ascontiguousarray(a.T) if ta else a,
                                 np.ascontiguousarray(b.T) if tb else b, ta, tb)
                assert_close(np.asarray(c), a @ b, "gemm", f"{want} sgemm {M}x{N}x{K} {ta} {tb}")
    for N, C, H, W, K, k, s, p in [(2, 3, 7, 9, 5, 3, 1, 1), (5, 13, 9, 7, 3, 1, 2, 0),
                                   (1, 5, 11, 8, 13, 4, 2, 1), (2, 16, 20, 20, 16, 3, 1, 1),
                                   (3, 8, 13, 13, 16, 2, 1, 0)]:
        x = f32(N, C, H, W)
        w = f32(K, C, k, k, scale=(2 / (C * k * k)) ** 0.5)
        b = f32(K)
        y = np.asarray(native.conv2d_forward(x, w, b, s, p))
        assert_close(y, ref.conv2d_forward(x, w, b, s, p), "conv2d", f"{want} conv y")
        g = 2.0 ** -round(np.log2(np.sqrt(y[:, 0].size)))
        dy = f32(*y.shape, scale=g)
        got = [np.asarray(t) for t in native.conv2d_backward(dy, x, w, s, p)]
        exp = ref.conv2d_backward(dy, x, w, s, p)
        assert_close(got[0] / g, exp[0] / g, "conv2d", f"{want} conv dx")
        assert_close(got[1], exp[1], "conv2d", f"{want} conv dw")
        assert_close(got[2], exp[2], "conv2d", f"{want} conv db")
    x, w, b = f32(33, 300), f32(13, 300, scale=300 ** -0.5), f32(13)
    assert_close(np.asarray(native.linear_forward(x, w, b)), ref.linear_forward(x, w, b),
                 "linear", f"{want} linear y")
    dy = f32(33, 13, scale=0.125)
    for t, r, name in zip(native.linear_backward(dy, x, w), ref.linear_backward(dy, x, w),
                          ("dx", "dw", "db")):
        k = 8.0 if name == "dx" else 1.0
        assert_close(np.asarray(t) * k, r * k, "linear", f"{want} linear {name}")
    print("ok", want)
""")


@pytest.mark.parametrize("kernel", KERNELS)
def test_forced_kernel_in_subprocess(kernel):
    best = native.gemm_kernel()
    if KERNELS.index(kernel) > KERNELS.index(best):
        pytest.skip(f"this CPU's best GEMM kernel is {best}")
    r = run_child(_CHILD, kernel, env_extra={"TFE_GEMM_KERNEL": kernel})
    assert r.returncode == 0, (f"TFE_GEMM_KERNEL={kernel}: exit {r.returncode}\n{r.stdout}\n"
                               f"{r.stderr}")
    assert f"ok {kernel}" in r.stdout
