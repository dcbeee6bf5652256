"""Native 2-D max pooling (maxpool2d_forward / maxpool2d_backward) against the reference.

The maximum and its argmax are selections, so y and argmax must match exactly (inputs have
no ties); the backward scatter-adds overlapping windows and is compared with the tolerance.

The reference itself, in the sections below the native tests: against float64 finite
differences and against PyTorch (skipped without it).
"""
import itertools

import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads, proj
from helpers import assert_fails_cleanly, distinct, nat, noncontig, raises, randn
from tolerances import assert_close
from torch_oracle import DTYPES, T, close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


_SHAPES = [(1, 3, 7, 9), (5, 13, 9, 7), (2, 5, 8, 11)]
GRID = [(*_SHAPES[i % 3], k, s, p)
        for i, (k, s, p) in enumerate(itertools.product((2, 3), (1, 2), (0, 1)))]
EXTRA = [
    (1, 3, 2, 2, 2, 2, 0),       # one window
    (2, 5, 3, 3, 3, 1, 1),       # 3x3 map, padded, windows overlap heavily
    (3, 13, 1, 9, 1, 1, 0),      # 1-row map, k=1 (identity)
    (2, 3, 9, 7, 3, 3, 1),       # stride 3
    (8, 16, 48, 48, 2, 2, 0),    # paper: 48 -> 24
    (8, 16, 48, 48, 3, 2, 1),    # ResNet stem pool
]
CASES = GRID + EXTRA


def _ids(cases):
    return ["N{}C{}H{}W{}k{}s{}p{}".format(*c) for c in cases]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_forward_backward(device, rng, case):
    N, C, H, W, k, s, p = case
    x = distinct(rng, N, C, H, W)
    y, am = map(nat, native.maxpool2d_forward(x, k, s, p))
    ry, ram = ref.maxpool2d_forward(x, k, s, p)
    assert y.dtype == np.float32 and am.dtype == np.int32
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ram)
    dy = randn(rng, *y.shape)
    dx = nat(native.maxpool2d_backward(dy, am, H, W))
    assert_close(dx, ref.maxpool2d_backward(dy, ram, H, W), "maxpool", "dx")


def test_default_stride_is_k(device, rng):
    x = distinct(rng, 2, 3, 7, 9)
    y, am = map(nat, native.maxpool2d_forward(x, 3))
    ry, ram = ref.maxpool2d_forward(x, 3, 3, 0)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ram)


def test_ties_first_maximum_wins(device, rng):
    # Constant planes: every window is a tie, the first element in row-major order wins.
    x = np.ones((2, 3, 7, 9), np.float32)
    for k, s, p in [(2, 2, 0), (3, 1, 1), (3, 2, 1)]:
        _, am = native.maxpool2d_forward(x, k, s, p)
        np.testing.assert_array_equal(nat(am), ref.maxpool2d_forward(x, k, s, p)[1])


def test_negative_inputs_never_pick_padding(device, rng):
    x = -1.0 - np.abs(distinct(rng, 2, 5, 7, 9))
    y, am = map(nat, native.maxpool2d_forward(x, 3, 2, 1))
    ry, ram = ref.maxpool2d_forward(x, 3, 2, 1)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ram)


FWD_BAD = [
    ("x float64", lambda x: (x.astype(np.float64), 2, 2, 0), "x: "),
    ("x int32", lambda x: (x.astype(np.int32), 2, 2, 0), "x: expected float32"),
    ("x rank 3", lambda x: (x[0], 2, 2, 0), "x: expected 4-d"),
    ("x non-contiguous", lambda x: (noncontig(x), 2, 2, 0), "x: array is not C-contig"),
    ("x empty", lambda x: (x[:0], 2, 2, 0), "x: empty"),
    ("k 0", lambda x: (x, 0, 1, 0), "k must be >= 1"),
    ("stride 0", lambda x: (x, 2, 0, 0), "stride must be >= 1"),
    ("pad -1", lambda x: (x, 2, 2, -1), r"pad must be in \[0, k/2\]"),
    ("pad > k/2", lambda x: (x, 3, 1, 2), r"pad must be in \[0, k/2\]"),
    ("window too big", lambda x: (x, 10, 1, 0), "window 10x10 is larger"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in FWD_BAD], ids=[c[0] for c in FWD_BAD])
def test_forward_rejects(rng, make_args, match):
    with raises("maxpool2d_forward", match):
        native.maxpool2d_forward(*make_args(distinct(rng, 2, 3, 7, 9)))


BWD_BAD = [
    ("argmax int64", lambda dy, am: (dy, am.astype(np.int64), 7, 9), "argmax: expected int32"),
    ("argmax float", lambda dy, am: (dy, am.astype(np.float32), 7, 9), "argmax: expected int32"),
    ("dy float64", lambda dy, am: (dy.astype(np.float64), am, 7, 9), "dy: "),
    ("dy rank 3", lambda dy, am: (dy[0], am, 7, 9), "dy: expected 4-d"),
    ("shape mismatch", lambda dy, am: (dy[:, :2].copy(), am, 7, 9), "argmax: expected shape"),
    ("H 0", lambda dy, am: (dy, am, 0, 9), "H and W must be >= 1"),
    ("argmax out of plane", lambda dy, am: (dy, am, 3, 3), r"argmax\[\d+\] = \d+ is outside"),
    ("argmax negative", lambda dy, am: (dy, np.full_like(am, -1), 7, 9), r"argmax\[0\] = -1"),
    ("dy non-contiguous", lambda dy, am: (noncontig(dy), am, 7, 9), "dy: array is not C-contig"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in BWD_BAD], ids=[c[0] for c in BWD_BAD])
def test_backward_rejects(rng, make_args, match):
    x = distinct(rng, 2, 3, 7, 9)
    y, am = map(nat, native.maxpool2d_forward(x, 2, 2, 0))
    dy = randn(rng, *y.shape)
    with raises("maxpool2d_backward", match):
        native.maxpool2d_backward(*make_args(dy, am.copy()))


@pytest.mark.parametrize("H,W", [(2**31, 2**31)], ids=["2^31x2^31"])
def test_backward_impossible_sizes_fail_cleanly(H, W):
    # dx [1, 1, H, W] needs 2^62 * 4 = 2^64 bytes, which wraps to 0 in size_t: must raise.
    assert_fails_cleanly("maxpool2d_backward",
                         "native.maxpool2d_backward(np.ones((1, 1, 1, 1), np.float32), "
                         f"np.zeros((1, 1, 1, 1), np.int32), {H}, {W})")


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

def distinct_values(r, shape, spacing=0.01):
    """Values whose pairwise gaps are >= spacing, so no max can change under +-h."""
    n = int(np.prod(shape))
    return ((r.permutation(n) - n / 2) * spacing).reshape(shape)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pad", [0, 1])
def test_maxpool_gradcheck(k, stride, pad):
    r = np.random.default_rng(100 * k + 10 * stride + pad)
    N, C, H, W = (3, 5, 7, 9) if stride == 2 else (1, 3, 7, 9)
    x = distinct_values(r, (N, C, H, W))
    y, argmax = ref.maxpool2d_forward(x, k, stride, pad)
    assert argmax.dtype == np.int32
    assert y.shape == (N, C, (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1)
    R = r.standard_normal(y.shape)
    dx = ref.maxpool2d_backward(R, argmax, H, W)
    (num,) = numeric_grads(lambda: proj(ref.maxpool2d_forward(x, k, stride, pad)[0], R), [x])
    assert_grads_close([dx], [num], ["dx"])


def maxpool_bruteforce(x, k, stride, pad):
    """Loops over every window in row-major order, keeping the first maximum."""
    N, C, H, W = x.shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    y = np.zeros((N, C, Ho, Wo), x.dtype)
    idx = np.zeros((N, C, Ho, Wo), np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    best, arg = None, None
                    for p in range(k):
                        for q in range(k):
                            h, w = i * stride - pad + p, j * stride - pad + q
                            if 0 <= h < H and 0 <= w < W and (best is None or x[n, c, h, w] > best):
                                best, arg = x[n, c, h, w], h * W + w
                    y[n, c, i, j], idx[n, c, i, j] = best, arg
    return y, idx


@pytest.mark.parametrize("k,stride,pad", [(2, 1, 0), (2, 2, 1), (3, 1, 1), (3, 2, 1), (3, 2, 0)])
def test_maxpool_argmax_rule_with_ties_and_padding(k, stride, pad):
    """Many ties (values from {-3, -2, -1}: all negative, so -inf padding must never win)."""
    r = np.random.default_rng(k + stride + pad)
    x = r.integers(-3, 0, size=(2, 3, 7, 9)).astype(np.float32)
    y, argmax = ref.maxpool2d_forward(x, k, stride, pad)
    y_bf, idx_bf = maxpool_bruteforce(x, k, stride, pad)
    np.testing.assert_array_equal(y, y_bf)
    np.testing.assert_array_equal(argmax, idx_bf)


def test_maxpool_argmax_hand_example():
    x = np.array([[[[1., 5., 5.],
                    [5., 2., 0.],
                    [-1., -1., 7.]]]], np.float32)
    y, argmax = ref.maxpool2d_forward(x, 2, 1, 0)
    np.testing.assert_array_equal(y[0, 0], [[5, 5], [5, 7]])
    np.testing.assert_array_equal(argmax[0, 0], [[1, 1], [3, 8]])  # first max in row-major order
    # All negative, so -inf padding must never be chosen; x' = [[-2, -6, -6], [-6, -3, -1],
    # [-2, -2, -8]]; windows: {(0,0)}, {(0,1), (0,2)}, {(1,0), (2,0)}, {(1,1), (1,2), (2,1), (2,2)}.
    y, argmax = ref.maxpool2d_forward(-np.abs(x) - 1, 2, 2, 1)
    np.testing.assert_array_equal(y[0, 0], [[-2, -6], [-2, -1]])
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [6, 5]])
    # Even an input of -inf never selects padding: the first real element of the window wins.
    y, argmax = ref.maxpool2d_forward(np.full((1, 1, 3, 3), -np.inf, np.float32), 2, 2, 1)
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [3, 4]])
    dx = ref.maxpool2d_backward(np.ones((1, 1, 2, 2), np.float32), np.array(
        [[[[1, 1], [3, 8]]]], np.int32), 3, 3)
    np.testing.assert_array_equal(dx[0, 0], [[0, 2, 0], [1, 0, 0], [0, 0, 1]])


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,stride,pad", [(2, 1, 0), (2, 2, 0), (2, 2, 1), (3, 1, 1), (3, 2, 0),
                                          (3, 2, 1), (3, 3, 1)])
def test_maxpool_vs_torch(torch, dtype, k, stride, pad):
    F = torch.nn.functional
    r = np.random.default_rng(10 * k + stride + pad)
    shape = (3, 5, 7, 9)
    n = int(np.prod(shape))
    x = ((r.permutation(n) - n / 2) / n).reshape(shape).astype(dtype)   # distinct values
    tx = T(x, True)
    ty, tidx = F.max_pool2d(tx, k, stride, pad, return_indices=True)
    y, argmax = ref.maxpool2d_forward(x, k, stride, pad)
    close(y, ty, dtype, "y")
    np.testing.assert_array_equal(argmax, tidx.numpy())
    dy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(T(dy))
    close(ref.maxpool2d_backward(dy, argmax, 7, 9), tx.grad, dtype, "dx")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x = f(2, 3, 7, 9)
    pooled, am = ref.maxpool2d_forward(x, 3, 2, 1)
    return [(ref.maxpool2d_forward, [x, 3, 2, 1], ()),
            (ref.maxpool2d_backward, [pooled, am, 7, 9], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# maxpool.cu compiled for the CPU and compared bit for bit with the CPU kernel on the same
# inputs, in guarded device buffers (tests/emulated.py); no GPU needed. The backward promises
# the CPU's summation order for overlapping windows, so it is bit-exact too.
# N, C, H, W, k, stride, pad (pad <= k / 2, as PyTorch requires)
EMULATED_CASES = [(2, 3, 8, 8, 2, 2, 0), (2, 2, 9, 7, 3, 2, 1), (1, 3, 6, 6, 3, 1, 1),
                  (1, 2, 11, 10, 5, 3, 2), (2, 2, 5, 5, 1, 1, 0), (1, 1, 7, 9, 4, 1, 2),
                  (1, 2, 4, 4, 4, 4, 0), (1, 1, 3, 5, 2, 1, 1), (2, 1, 13, 11, 3, 3, 1),
                  (1, 1, 1, 1, 1, 1, 0), (2, 3, 10, 10, 5, 2, 2), (2, 16, 48, 48, 3, 2, 1)]


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("values", ["random", "ties", "nan-inf"])
@pytest.mark.parametrize("case", EMULATED_CASES,
                         ids=["{}x{}x{}x{}-k{}-s{}-p{}".format(*c) for c in EMULATED_CASES])
def test_emulated_maxpool(emulated, rng, case, values, direction):
    N, C, H, W, k, s, p = case
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    ni, no = N * C * H * W, N * C * Ho * Wo
    if values == "ties":
        x = rng.integers(-2, 3, ni).astype(np.float32)
    else:
        x = emulated.uniform(rng, ni, -3, 3)
    if values == "nan-inf":
        x[::7] = np.nan
        x[3::5] = -np.inf
    y, am = np.zeros(no, np.float32), np.zeros(no, np.int32)
    emulated.cpu.maxpool2d_forward(y, am, x, N, C, H, W, k, s, p)
    if direction == "forward":
        yd, amd = emulated.garbage(no), emulated.garbage(no, np.int32)
        emulated.cuda.maxpool2d_forward(yd, amd, x, N, C, H, W, k, s, p)
        emulated.assert_exact(yd, y, "y")
        emulated.assert_exact(amd, am, "argmax")
    else:
        dy = emulated.uniform(rng, no, -4, 4)
        dx = np.zeros(ni, np.float32)
        emulated.cpu.maxpool2d_backward(dx, dy, am, N, C, H, W, Ho, Wo)
        dxd = emulated.garbage(ni)
        emulated.cuda.maxpool2d_backward(dxd, dy, am, N, C, H, W, Ho, Wo)
        emulated.assert_exact(dxd, dx, "dx")


def test_emulated_maxpool_all_minus_inf(emulated):
    # A window of -inf only reports its first in-plane element.
    x = np.full(25, -np.inf, np.float32)
    y, am = np.zeros(9, np.float32), np.zeros(9, np.int32)
    emulated.cpu.maxpool2d_forward(y, am, x, 1, 1, 5, 5, 3, 2, 1)
    yd, amd = emulated.garbage(9), emulated.garbage(9, np.int32)
    emulated.cuda.maxpool2d_forward(yd, amd, x, 1, 1, 5, 5, 3, 2, 1)
    emulated.assert_exact(yd, y, "y")
    emulated.assert_exact(amd, am, "argmax")
