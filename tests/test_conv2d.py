"""Native conv2d (tfe._native.conv2d_forward/backward) against the NumPy reference.

Forward output and all three gradients for k = 1..4, stride 1/2, pad 0/1, with and without
bias, on awkward shapes (batch 1 and 5, odd maps, 3/5/13 channels) and one paper-sized
layer; gradient accumulation into caller buffers; determinism; argument validation.

The reference itself, in the sections below the native tests: against float64 finite
differences and against PyTorch (skipped without it).
"""
import itertools

import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads, proj
from helpers import nat, noncontig, num_threads, pow2_scale, raises, randn, readonly, run_child
from tolerances import assert_close
from torch_oracle import DTYPES, T, close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py

# (N, C, H, W, K, k, stride, pad, bias): every (k, stride, pad) combination, with shapes and
# bias cycling so that each kernel size meets odd maps, batch 1 and 5, and 3/5/13 channels.
_SHAPES = [(1, 3, 7, 9, 5), (5, 13, 9, 7, 3), (2, 5, 11, 8, 13), (1, 13, 5, 6, 5)]
GRID = [
    (*_SHAPES[i % len(_SHAPES)], k, s, p, bool(i % 2 == 0) if k != 2 else bool(i % 2))
    for i, (k, s, p) in enumerate(itertools.product((1, 2, 3, 4), (1, 2), (0, 1)))
]
EXTRA = [
    (5, 3, 4, 4, 13, 4, 1, 0, True),     # output 1x1: window covers the whole input
    (3, 5, 9, 7, 5, 3, 3, 1, False),     # stride 3 (> 2): ragged last window dropped
    (2, 3, 1, 17, 5, 1, 1, 0, True),     # a 1-row image
    (2, 8, 13, 13, 16, 3, 2, 1, True),   # 8 -> 16 downsampling block on an odd map
    (1, 16, 24, 24, 32, 1, 2, 0, False),  # 1x1 stride-2 projection shortcut
]
PAPER = (8, 16, 48, 48, 16, 3, 1, 1, True)  # 16 -> 16 residual conv on 48x48 faces


def _ids(cases):
    return ["N{}C{}H{}W{}K{}k{}s{}p{}{}".format(*c[:8], "b" if c[8] else "") for c in cases]


def make(rng, case):
    N, C, H, W, K, k, s, p, bias = case
    x = randn(rng, N, C, H, W)
    w = randn(rng, K, C, k, k, scale=np.sqrt(2.0 / (C * k * k)))  # He init: y is O(1)
    b = randn(rng, K, scale=0.5) if bias else None
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    # dy as from a batch-mean loss: dw, db (sums over N*Ho*Wo) come out O(1).
    g = pow2_scale(N * Ho * Wo)
    dy = randn(rng, N, K, Ho, Wo, scale=g)
    return x, w, b, dy, g


def check_forward(x, w, b, s, p):
    y = nat(native.conv2d_forward(x, w, b, s, p))
    assert_close(y, ref.conv2d_forward(x, w, b, s, p), "conv2d", "y")


def check_backward(dy, x, w, s, p, g):
    dx, dw, db = map(nat, native.conv2d_backward(dy, x, w, s, p))
    rdx, rdw, rdb = ref.conv2d_backward(dy, x, w, s, p)
    assert_close(dx / g, rdx / g, "conv2d", "dx")  # exact rescale to O(1)
    assert_close(dw, rdw, "conv2d", "dw")
    assert_close(db, rdb, "conv2d", "db")


@pytest.mark.parametrize("case", GRID + EXTRA, ids=_ids(GRID + EXTRA))
def test_forward(device, rng, case):
    x, w, b, _, _ = make(rng, case)
    check_forward(x, w, b, case[6], case[7])


@pytest.mark.parametrize("case", GRID + EXTRA, ids=_ids(GRID + EXTRA))
def test_backward(device, rng, case):
    x, w, _, dy, g = make(rng, case)
    check_backward(dy, x, w, case[6], case[7], g)


def test_paper_shape(device, rng):
    x, w, b, dy, g = make(rng, PAPER)
    check_forward(x, w, b, 1, 1)
    check_backward(dy, x, w, 1, 1, g)


def test_defaults_and_keywords(device, rng):
    x, w, _, _, _ = make(rng, (2, 3, 6, 7, 5, 3, 1, 0, False))
    y = nat(native.conv2d_forward(x, w))  # b=None, stride=1, pad=0
    np.testing.assert_array_equal(y, nat(native.conv2d_forward(x=x, w=w, b=None, stride=1, pad=0)))
    assert_close(y, ref.conv2d_forward(x, w, None, 1, 0), "conv2d", "y")


def test_accepts_tensors_and_read_only_inputs(rng):
    """Native outputs (native.Tensor) chain into the next call without NumPy; inputs that are
    only read may be read-only arrays; a native.Tensor accumulator is updated in place."""
    x, w, b, dy, g = make(rng, (2, 3, 7, 9, 5, 3, 1, 1, True))
    y = native.conv2d_forward(readonly(x), readonly(w), readonly(b), 1, 1)
    assert isinstance(y, native.Tensor) and y.shape == dy.shape
    assert_close(nat(y), ref.conv2d_forward(x, w, b, 1, 1), "conv2d", "y")
    w2 = randn(rng, 4, 5, 3, 3, scale=np.sqrt(2 / 45))
    h = native.relu_forward(y)
    y2 = native.conv2d_forward(h, w2, None, 2, 1)  # a Tensor straight into the next conv
    assert_close(nat(y2), ref.conv2d_forward(nat(h), w2, None, 2, 1), "conv2d", "y2")
    dw = native.zeros(list(w.shape))
    _, dw_out, _ = native.conv2d_backward(native.as_tensor(dy), readonly(x), readonly(w), 1, 1,
                                          dw=dw)
    assert_close(nat(dw), ref.conv2d_backward(dy, x, w, 1, 1)[1], "conv2d", "dw into a Tensor")


def test_backward_accumulates_into_given_buffers(device, rng):
    case = (3, 5, 9, 7, 13, 3, 2, 1, False)
    x, w, _, dy, g = make(rng, case)
    _, rdw, rdb = ref.conv2d_backward(dy, x, w, 2, 1)
    dw0 = randn(rng, *w.shape)
    db0 = randn(rng, w.shape[0])
    dw, db = dw0.copy(), db0.copy()
    dx, dw_out, db_out = native.conv2d_backward(dy, x, w, 2, 1, dw=dw, db=db)
    assert np.shares_memory(nat(dw_out), dw) and np.shares_memory(nat(db_out), db)
    assert_close(dw, dw0 + rdw, "conv2d", "dw += ")
    assert_close(db, db0 + rdb, "conv2d", "db += ")
    assert dx is not None

    # Twice into zeros == 2x one gradient; compute_dx=False skips dx and keeps dw/db right.
    dw, db = np.zeros_like(w), np.zeros(w.shape[0], np.float32)
    for _ in range(2):
        dx, _, _ = native.conv2d_backward(dy, x, w, 2, 1, dw=dw, db=db, compute_dx=False)
        assert dx is None
    assert_close(dw, 2 * rdw, "conv2d", "2 dw")
    assert_close(db, 2 * rdb, "conv2d", "2 db")

    dx, dw1, db1 = native.conv2d_backward(dy, x, w, 2, 1, compute_dx=False)
    assert dx is None
    assert_close(nat(dw1), rdw, "conv2d", "dw")
    assert_close(nat(db1), rdb, "conv2d", "db")

    # No bias: compute_db=False skips the db reduction; dx and dw are unchanged.
    dx2, dw2, db2 = native.conv2d_backward(dy, x, w, 2, 1, compute_db=False)
    assert db2 is None
    rdx2, rdw2, rdb2 = ref.conv2d_backward(dy, x, w, 2, 1, compute_db=False)
    assert rdb2 is None
    assert_close(nat(dx2), rdx2, "conv2d", "dx without db")
    assert_close(nat(dw2), rdw, "conv2d", "dw without db")
    with pytest.raises(ValueError, match=r"^\[conv2d_backward\] db given but compute_db"):
        native.conv2d_backward(dy, x, w, 2, 1, db=db, compute_db=False)


def test_deterministic_and_thread_count_independent(device, rng):
    case = (4, 13, 20, 18, 16, 3, 1, 1, True)
    x, w, b, dy, g = make(rng, case)

    def run():
        y = nat(native.conv2d_forward(x, w, b, 1, 1)).copy()
        return (y,) + tuple(nat(t).copy() for t in native.conv2d_backward(dy, x, w, 1, 1))

    with num_threads(2):
        first, second = run(), run()
    for a, c in zip(first, second):
        np.testing.assert_array_equal(a, c)  # bit-identical for a fixed thread count
    with num_threads(1):
        single = run()
    for a, c, name in zip(first, single, ("y", "dx", "dw", "db")):
        scale = 1 / g if name == "dx" else 1.0
        assert_close(c * scale, a * scale, "conv2d", name + " 1 vs 2 threads")


# ---- argument validation -------------------------------------------------------------------

def _good(rng):
    x = randn(rng, 2, 3, 7, 9)
    w = randn(rng, 5, 3, 3, 3)
    b = randn(rng, 5)
    dy = randn(rng, 2, 5, 5, 7)
    return x, w, b, dy


FWD_BAD = [
    ("x float64", lambda x, w, b: (x.astype(np.float64), w, b, 1, 0), "x: "),
    ("x int64", lambda x, w, b: (x.astype(np.int64), w, b, 1, 0), "x: expected float32"),
    ("w int32", lambda x, w, b: (x, w.astype(np.int32), b, 1, 0), "w: expected float32"),
    ("b float64", lambda x, w, b: (x, w, b.astype(np.float64), 1, 0), "b: "),
    ("x rank 3", lambda x, w, b: (x[0], w, b, 1, 0), "x: expected 4-d"),
    ("w rank 2", lambda x, w, b: (x, w.reshape(5, -1), b, 1, 0), "w: expected 4-d"),
    ("channels", lambda x, w, b: (x, w[:, :2].copy(), b, 1, 0), "w: "),
    ("non-square", lambda x, w, b: (x, w[:, :, :2].copy(), b, 1, 0), "w: kernel must be square"),
    ("b shape", lambda x, w, b: (x, w, b[:4].copy(), 1, 0), "b: expected shape"),
    ("b rank", lambda x, w, b: (x, w, b.reshape(5, 1), 1, 0), "b: expected shape"),
    ("stride 0", lambda x, w, b: (x, w, b, 0, 0), "stride must be >= 1"),
    ("stride -1", lambda x, w, b: (x, w, b, -1, 0), "stride must be >= 1"),
    ("pad -1", lambda x, w, b: (x, w, b, 1, -1), "pad must be >= 0"),
    ("kernel too big", lambda x, w, b: (x[:, :, :2].copy(), w, b, 1, 0), "kernel 3x3 is larger"),
    ("x non-contiguous", lambda x, w, b: (noncontig(x), w, b, 1, 0), "x: array is not C-contig"),
    ("w non-contiguous", lambda x, w, b: (x, noncontig(w), b, 1, 0), "w: array is not C-contig"),
    ("x empty", lambda x, w, b: (x[:0], w, b, 1, 0), "x: empty"),
    ("w empty", lambda x, w, b: (x, w[:0], b[:0], 1, 0), "w: empty"),
    ("x None", lambda x, w, b: (None, w, b, 1, 0), "x: required"),
    ("x list", lambda x, w, b: (x.tolist(), w, b, 1, 0), "x: expected a NumPy array"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in FWD_BAD], ids=[c[0] for c in FWD_BAD])
def test_forward_rejects(rng, make_args, match):
    x, w, b, _ = _good(rng)
    with raises("conv2d_forward", match):
        native.conv2d_forward(*make_args(x, w, b))


BWD_BAD = [
    ("dy float64", lambda dy, x, w: ((dy.astype(np.float64), x, w, 1, 0), {}), "dy: "),
    ("dy int64", lambda dy, x, w: ((dy.astype(np.int64), x, w, 1, 0), {}), "dy: expected float32"),
    ("dy shape", lambda dy, x, w: ((dy[:, :, :4].copy(), x, w, 1, 0), {}), "dy: expected shape"),
    ("dy rank", lambda dy, x, w: ((dy[0], x, w, 1, 0), {}), "dy: expected 4-d"),
    ("dy for other stride", lambda dy, x, w: ((dy, x, w, 2, 0), {}), "dy: expected shape"),
    ("x rank", lambda dy, x, w: ((dy, x[0], w, 1, 0), {}), "x: expected 4-d"),
    ("channels", lambda dy, x, w: ((dy, x, w[:, :2].copy(), 1, 0), {}), "w: "),
    ("stride 0", lambda dy, x, w: ((dy, x, w, 0, 0), {}), "stride must be >= 1"),
    ("pad -2", lambda dy, x, w: ((dy, x, w, 1, -2), {}), "pad must be >= 0"),
    ("dy non-contiguous", lambda dy, x, w: ((noncontig(dy), x, w, 1, 0), {}), "dy: array is not"),
    ("dw shape", lambda dy, x, w: ((dy, x, w, 1, 0), {"dw": np.zeros((5, 3, 3, 2), np.float32)}),
     "dw: expected shape"),
    ("dw float64", lambda dy, x, w: ((dy, x, w, 1, 0), {"dw": np.zeros(w.shape)}), "dw: "),
    ("dw read-only", lambda dy, x, w: ((dy, x, w, 1, 0), {"dw": readonly(np.zeros_like(w))}),
     "dw: is updated in place but the array is read-only"),
    ("db read-only", lambda dy, x, w: ((dy, x, w, 1, 0), {"db": readonly(np.zeros(5, np.float32))}),
     "db: is updated in place but the array is read-only"),
    ("db shape", lambda dy, x, w: ((dy, x, w, 1, 0), {"db": np.zeros(4, np.float32)}),
     "db: expected shape"),
    ("dw non-contiguous", lambda dy, x, w: ((dy, x, w, 1, 0), {"dw": noncontig(np.zeros_like(w))}),
     "dw: array is not C-contig"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in BWD_BAD], ids=[c[0] for c in BWD_BAD])
def test_backward_rejects(rng, make_args, match):
    x, w, _, dy = _good(rng)
    args, kwargs = make_args(dy, x, w)
    with raises("conv2d_backward", match):
        native.conv2d_backward(*args, **kwargs)


def test_rejected_accumulator_is_untouched(rng):
    x, w, _, dy = _good(rng)
    dw = np.ones_like(w)
    with raises("conv2d_backward"):
        native.conv2d_backward(dy, x, w, 1, 0, dw=dw, db=np.zeros(4, np.float32))
    np.testing.assert_array_equal(dw, 1.0)


# ---- extreme hyper-parameters: an error or the right answer, never a crash ------------------
# Run in a child process: a kernel that overflows int arithmetic may crash, and must not take
# the test session down with it.

_EXTREME_CHILD = """
import resource
import sys
import numpy as np
# A kernel that mis-sizes a buffer must fail fast, not fill the shared machine's memory.
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
import tfe.reference as ref
from tfe import _native as native

which, stride, pad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = (np.arange(16, dtype=np.float32) + 1).reshape(1, 1, 4, 4)
w = np.ones((1, 1, 2, 2), np.float32)
op = "conv2d_" + which
try:
    if which == "forward":
        out = native.conv2d_forward(x, w, None, stride, pad)
    else:
        out = native.conv2d_backward(np.ones((1, 1, 1, 1), np.float32), x, w, stride, pad)[1]
except ValueError as e:
    assert str(e).startswith("[" + op + "] "), e
    print("error", e)
    sys.exit(0)
except (MemoryError, RuntimeError) as e:
    # Out of memory is right only when the output really is huge (the pad case); a 1x1
    # output (huge stride) needs no memory.
    assert pad >= 2**20 and (isinstance(e, MemoryError) or "memory" in str(e)), repr(e)
    print("error", e)
    sys.exit(0)
# No error: only right for the huge strides (one window); a huge pad has no representable output.
assert pad < 2**20, f"no error for pad={pad}: returned shape {tuple(out.shape)}"
assert tuple(out.shape) == ((1, 1, 1, 1) if which == "forward" else (1, 1, 2, 2)), out.shape
want = ref.conv2d_forward(x, w, None, 3, 0) if which == "forward" else x[:, :, :2, :2]
np.testing.assert_array_equal(np.asarray(out), want)
print("ok")
"""


@pytest.mark.parametrize("which", ["forward", "backward"])
@pytest.mark.parametrize("stride,pad", [(2**31 - 3, 0), (2**31 - 1, 0), (1, 2**31 - 1)],
                         ids=["stride 2^31-3", "stride 2^31-1", "pad 2^31-1"])
def test_extreme_hyper_parameters_fail_cleanly(which, stride, pad):
    """A stride beyond the input is legal (one window); a pad this large has an output too big
    for any memory. Either way: a clean error or the right result, never a crash/garbage."""
    r = run_child(_EXTREME_CHILD, which, stride, pad, timeout=90)
    assert r.returncode == 0, (f"conv2d_{which}(x[1,1,4,4], w[1,1,2,2], stride={stride}, "
                               f"pad={pad}): exit code {r.returncode}\n{r.stdout}\n{r.stderr}")


# ---- Winograd F(2x2, 3x3) for the 3x3 stride-1 pad-1 layers (csrc/conv/winograd_train.cpp) ----
# TFE_CONV_WINOGRAD (read on every call): "0" or unset direct only, "1" Winograd for every 3x3
# stride-1 pad-1 forward and input gradient, "2" for the weight gradient too, "auto": where it
# was measured to pay (y and dx from 32 channels on, 16 on the portable kernel level; dw never).

# Odd, non-square maps (partial tiles on both sides), runs of more than 16 tiles in a tile row
# (the AVX-512 transforms' vector width), panels that span images, 1-row and 1-column maps.
WINO = [(3, 5, 9, 11, 7), (2, 3, 7, 37, 4), (5, 13, 6, 5, 3), (1, 2, 1, 9, 3), (2, 4, 13, 1, 5),
        (4, 16, 12, 12, 16)]


def _wino_ids(cases):
    return ["N{}C{}H{}W{}K{}".format(*c) for c in cases]


def _fwd_dx(x, w, b, dy, env, monkeypatch):
    monkeypatch.setenv("TFE_CONV_WINOGRAD", env)
    y = nat(native.conv2d_forward(x, w, b, 1, 1)).copy()
    dx, dw, db = (nat(t).copy() for t in native.conv2d_backward(dy, x, w, 1, 1))
    return y, dx, dw, db


@pytest.mark.parametrize("case", WINO, ids=_wino_ids(WINO))
def test_winograd_matches_float64(rng, case, monkeypatch):
    """Forward, input and weight gradient by Winograd: per-op tolerance against the float32
    reference, and normwise as accurate against float64 as the float32 reference (within
    tests/float64_oracle.py's factor)."""
    from float64_oracle import assert_as_accurate_as_float32

    N, C, H, W, K = case
    x, w, b, dy, g = make(rng, (N, C, H, W, K, 3, 1, 1, True))
    y, dx, dw, _ = _fwd_dx(x, w, b, dy, "2", monkeypatch)
    d = np.float64
    y64 = ref.conv2d_forward(x.astype(d), w.astype(d), b.astype(d), 1, 1)
    dx64, dw64, _ = ref.conv2d_backward(dy.astype(d), x.astype(d), w.astype(d), 1, 1)
    y32 = ref.conv2d_forward(x, w, b, 1, 1)
    dx32, dw32, _ = ref.conv2d_backward(dy, x, w, 1, 1)
    assert_close(y, y32, "conv2d", "winograd y")
    assert_close(dx / g, dx32 / g, "conv2d", "winograd dx")
    assert_close(dw, dw32, "conv2d", "winograd dw")
    assert_as_accurate_as_float32({"y": y, "dx": dx, "dw": dw}, {"y": y32, "dx": dx32, "dw": dw32},
                                  {"y": y64, "dx": dx64, "dw": dw64}, "winograd conv2d")


def test_winograd_path_is_taken_for_3x3_stride1_pad1_only(rng, monkeypatch):
    """TFE_CONV_WINOGRAD=1 changes the bits of y and dx (another algorithm) of a 3x3 stride-1
    pad-1 convolution, =2 those of dw too, never db (a plain sum); other shapes never change."""
    x, w, b, dy, _ = make(rng, (3, 5, 9, 11, 7, 3, 1, 1, True))
    direct = _fwd_dx(x, w, b, dy, "0", monkeypatch)
    for env, same in (("1", ("dw", "db")), ("2", ("db",))):
        wino = _fwd_dx(x, w, b, dy, env, monkeypatch)
        for name, a, c in zip(("y", "dx", "dw", "db"), direct, wino):
            assert np.array_equal(a, c) == (name in same), (env, name)
    for case in [(3, 5, 9, 11, 7, 3, 2, 1, True), (3, 5, 9, 11, 7, 3, 1, 0, True),
                 (3, 5, 9, 11, 7, 3, 1, 2, True), (3, 5, 9, 11, 7, 1, 1, 1, True)]:
        x, w, b, dy, _ = make(rng, case)
        s, p = case[6], case[7]
        for env in ("0", "2"):
            monkeypatch.setenv("TFE_CONV_WINOGRAD", env)
            got = [nat(native.conv2d_forward(x, w, b, s, p)).copy()]
            got += [nat(t).copy() for t in native.conv2d_backward(dy, x, w, s, p)]
            if env == "0":
                first = got
        for a, c in zip(first, got):
            np.testing.assert_array_equal(a, c)


_WINO_MIN = 16 if native.gemm_kernel() == "generic" else 32  # winograd_train.cpp


@pytest.mark.parametrize("channels", [8, 16, 31, 32, 64])
def test_winograd_measured_dispatch(rng, monkeypatch, channels):
    """=auto: Winograd for y and dx from 32 input and output channels on (16 on the portable
    kernel level), where it was measured to pay, dw always direct; unset: direct. Each gives
    the bits of the path it names."""
    auto = "1" if channels >= _WINO_MIN else "0"
    x, w, b, dy, _ = make(rng, (2, channels, 6, 5, channels, 3, 1, 1, True))
    paths = {env: _fwd_dx(x, w, b, dy, env, monkeypatch) for env in ("0", "1", "auto")}
    assert not np.array_equal(paths["0"][0], paths["1"][0])  # the bits tell the paths apart
    for got, want in zip(paths["auto"][:3], (paths[auto][0], paths[auto][1], paths["0"][2])):
        np.testing.assert_array_equal(got, want)
    monkeypatch.delenv("TFE_CONV_WINOGRAD")
    y = nat(native.conv2d_forward(x, w, b, 1, 1))
    dx, dw = (nat(t) for t in native.conv2d_backward(dy, x, w, 1, 1)[:2])
    for got, want in zip((y, dx, dw), paths["0"][:3]):
        np.testing.assert_array_equal(got, want)


def test_winograd_bits_do_not_depend_on_threads(rng, monkeypatch):
    x, w, b, dy, _ = make(rng, (5, 13, 20, 18, 16, 3, 1, 1, True))
    runs = []
    for t in (1, 2, 3):
        with num_threads(t):
            runs.append(_fwd_dx(x, w, b, dy, "2", monkeypatch))
    for other in runs[1:]:
        for a, c in zip(runs[0], other):
            np.testing.assert_array_equal(a, c)


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

CONV_CASES = [
    # N, C, H, W, K, k, stride, pad, bias
    (1, 3, 7, 9, 5, 1, 1, 0, True),
    (3, 5, 7, 9, 3, 1, 2, 1, False),
    (3, 5, 7, 9, 3, 2, 1, 1, True),
    (1, 3, 7, 9, 5, 2, 2, 0, True),
    (3, 3, 7, 9, 5, 3, 1, 1, True),
    (3, 5, 7, 9, 3, 3, 2, 0, True),
    (1, 3, 7, 9, 5, 3, 2, 1, False),
    (3, 3, 7, 9, 3, 4, 1, 0, True),
    (1, 5, 7, 9, 3, 4, 2, 1, True),
    (3, 3, 9, 7, 5, 3, 3, 1, True),
]


@pytest.mark.parametrize("N,C,H,W,K,k,stride,pad,bias", CONV_CASES)
def test_conv2d_gradcheck(N, C, H, W, K, k, stride, pad, bias):
    r = np.random.default_rng(hash((N, C, H, W, K, k, stride, pad)) % 2**32)
    x = r.standard_normal((N, C, H, W))
    w = r.standard_normal((K, C, k, k))
    b = r.standard_normal(K) if bias else None
    y = ref.conv2d_forward(x, w, b, stride, pad)
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    assert y.shape == (N, K, Ho, Wo)
    R = r.standard_normal(y.shape)
    dx, dw, db = ref.conv2d_backward(R, x, w, stride, pad)
    inputs = [x, w] + ([b] if bias else [])
    num = numeric_grads(lambda: proj(ref.conv2d_forward(x, w, b, stride, pad), R), inputs)
    assert_grads_close([dx, dw] + ([db] if bias else []), num, ["dx", "dw", "db"])
    if not bias:
        np.testing.assert_allclose(db, R.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_conv2d_forward_direct_sum():
    """The forward against the defining sum, written as plain loops."""
    r = np.random.default_rng(1)
    N, C, H, W, K, k, s, p = 2, 3, 7, 9, 4, 3, 2, 1
    x, w, b = r.standard_normal((N, C, H, W)), r.standard_normal((K, C, k, k)), r.standard_normal(K)
    y = ref.conv2d_forward(x, w, b, s, p)
    xpad = np.zeros((N, C, H + 2 * p, W + 2 * p))
    xpad[:, :, p:p + H, p:p + W] = x
    expect = np.zeros(y.shape)
    for n in range(N):
        for o in range(K):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    patch = xpad[n, :, i * s:i * s + k, j * s:j * s + k]
                    expect[n, o, i, j] = b[o] + np.sum(patch * w[o])
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,C,H,W,K,k,stride,pad,bias", [
    (1, 3, 7, 9, 5, 1, 1, 0, True),
    (3, 5, 7, 9, 3, 2, 2, 1, True),
    (3, 3, 7, 9, 5, 3, 1, 1, True),
    (2, 5, 7, 9, 4, 3, 2, 0, False),
    (1, 3, 7, 9, 3, 4, 1, 1, True),
    (3, 3, 9, 7, 5, 4, 2, 0, True),
    (2, 1, 48, 48, 8, 3, 1, 1, True),
])
def test_conv2d_vs_torch(torch, dtype, N, C, H, W, K, k, stride, pad, bias):
    F = torch.nn.functional
    r = np.random.default_rng(N + C + H + K + k + stride + pad)
    x = r.standard_normal((N, C, H, W)).astype(dtype)
    w = (r.standard_normal((K, C, k, k)) / k).astype(dtype)
    b = r.standard_normal(K).astype(dtype) if bias else None
    tx, tw = T(x, True), T(w, True)
    tb = T(b, True) if bias else None
    ty = F.conv2d(tx, tw, tb, stride=stride, padding=pad)
    y = ref.conv2d_forward(x, w, b, stride, pad)
    assert y.dtype == dtype
    close(y, ty, dtype, "y")
    dy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(T(dy))
    dx, dw, db = ref.conv2d_backward(dy, x, w, stride, pad)
    close(dx, tx.grad, dtype, "dx")
    close(dw, tw.grad, dtype, "dw")
    close(db, T(dy).sum((0, 2, 3)) if not bias else tb.grad, dtype, "db")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x, w, b, dy = f(2, 3, 7, 9), f(4, 3, 3, 3), f(4), f(2, 4, 4, 5)
    return [(ref.conv2d_forward, [x, w, b, 2, 1], ()),
            (ref.conv2d_backward, [dy, x, w, 2, 1], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# conv2d.cu compiled for the CPU and compared with the CPU kernel on the same inputs, in
# guarded device buffers (tests/emulated.py); no GPU needed. The forward, all three gradients
# (dw and db accumulate into non-zero buffers), then each gradient alone.
# N, C, H, W, K, k, stride, pad, bias
EMULATED_CASES = [
    (2, 3, 7, 5, 4, 3, 1, 1, True), (1, 1, 7, 5, 3, 3, 2, 1, False),
    (2, 2, 9, 8, 5, 1, 2, 0, True), (3, 4, 6, 7, 2, 2, 3, 0, True),
    (2, 3, 5, 5, 17, 4, 2, 2, True), (1, 2, 5, 4, 3, 2, 1, 1, False),
    (2, 3, 7, 7, 3, 1, 3, 0, False), (1, 1, 1, 3, 2, 1, 2, 0, True),
    (2, 5, 11, 10, 33, 3, 2, 1, True), (1, 2, 8, 8, 3, 5, 3, 2, True),
    (2, 3, 9, 9, 4, 3, 2, 0, True), (1, 8, 12, 12, 16, 3, 1, 1, False),
    (2, 1, 11, 9, 1, 5, 1, 2, True),
    (1, 3, 21, 19, 8, 3, 1, 1, True),  # more than one 64-wide output tile
    # layer-like shapes: many tiles, split-K weight gradients, strided dx phases
    (2, 16, 24, 24, 16, 3, 1, 1, True), (2, 8, 48, 48, 16, 3, 2, 1, False),
    (1, 3, 40, 40, 8, 5, 1, 2, True)]
EMULATED_PARTS = ["forward", "dx+dw+db", "dx only", "dw only", "db only"]


@pytest.mark.parametrize("part", EMULATED_PARTS)
@pytest.mark.parametrize("case", EMULATED_CASES, ids=[
    "{}x{}x{}x{}-K{}-k{}-s{}-p{}".format(*c) + ("" if c[8] else "-nobias") for c in EMULATED_CASES])
def test_emulated_conv2d(emulated, rng, case, part):
    N, C, H, W, K, k, s, p, bias = case
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    ws = 1.0 / np.sqrt(np.float32(C * k * k))
    x = emulated.uniform(rng, N * C * H * W)
    w = emulated.uniform(rng, K * C * k * k, -ws, ws)
    b, dy = emulated.uniform(rng, K), emulated.uniform(rng, N * K * Ho * Wo)
    dw0, db0 = emulated.uniform(rng, w.size), emulated.uniform(rng, K)
    sizes = (N, C, H, W, K, k, s, p)
    if part == "forward":
        y = np.zeros(dy.size, np.float32)
        emulated.cpu.conv2d_forward(y, x, w, b if bias else None, *sizes)
        yd = emulated.garbage(dy.size)
        emulated.cuda.conv2d_forward(yd, x, w, b if bias else None, *sizes)
        emulated.assert_close(yd, y, "conv2d", "y")
        return
    wdx, wdw, wdb = (part in ("dx+dw+db", f"{g} only") for g in ("dx", "dw", "db"))
    dx, dw, db = np.zeros(x.size, np.float32), dw0.copy(), db0.copy()
    emulated.cpu.conv2d_backward(dx if wdx else None, dw if wdw else None, db if wdb else None,
                                 dy, x, w, *sizes)
    dxd, dwd, dbd = emulated.garbage(x.size), dw0.copy(), db0.copy()
    emulated.cuda.conv2d_backward(dxd if wdx else None, dwd if wdw else None,
                                  dbd if wdb else None, dy, x, w, *sizes)
    if wdx:
        emulated.assert_close(dxd, dx, "conv2d", "dx")
    emulated.assert_close(dwd, dw, "conv2d", "dw")  # exactly dw0 when not requested
    emulated.assert_close(dbd, db, "conv2d", "db")
    if not wdw:
        emulated.assert_exact(dwd, dw0, "dw (not requested)")
    if not wdb:
        emulated.assert_exact(dbd, db0, "db (not requested)")
