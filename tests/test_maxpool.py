"""Native 2-D max pooling (maxpool2d_forward / maxpool2d_backward) against the reference.

The maximum and its argmax are selections, so y and argmax must match exactly (inputs have
no ties); the backward scatter-adds overlapping windows and is compared with the tolerance.
"""
import itertools

import numpy as np
import pytest

from devices import native, ref
from helpers import assert_fails_cleanly, distinct, nat, noncontig, raises, randn
from tolerances import assert_close

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
