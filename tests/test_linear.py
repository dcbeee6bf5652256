"""Native fully connected layer (linear_forward / linear_backward) against the reference.

The reference itself, in the sections below the native tests: against float64 finite
differences and against PyTorch (skipped without it).
"""
import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads, proj
from helpers import nat, noncontig, num_threads, pow2_scale, raises, randn, readonly
from tolerances import assert_close
from torch_oracle import DTYPES, T, close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


# (N, I, O, bias)
CASES = [
    (1, 3, 5, True),
    (5, 13, 3, False),
    (5, 1, 13, True),
    (2, 5, 1, True),
    (7, 300, 13, True),      # I beyond one GEMM depth block (256)
    (33, 129, 65, False),    # every dimension one past a power of two
    (200, 17, 7, True),      # tall: N past one GEMM row block
    (128, 224, 8, True),     # paper: TFE classifier, 160 + 64 features -> 8 FER+ emotions
    (128, 960, 160, False),  # paper: DeepID layer (conv3 ++ conv4 features -> 160)
]


def _ids():
    return ["N{}I{}O{}{}".format(n, i, o, "b" if b else "") for n, i, o, b in CASES]


def make(rng, N, I, O, bias):
    x = randn(rng, N, I)
    w = randn(rng, O, I, scale=np.sqrt(1.0 / I))
    b = randn(rng, O, scale=0.5) if bias else None
    g = pow2_scale(N)
    dy = randn(rng, N, O, scale=g)  # dw, db (sums over N) are O(1)
    return x, w, b, dy, g


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_forward_backward(device, rng, case):
    x, w, b, dy, g = make(rng, *case)
    assert_close(nat(native.linear_forward(x, w, b)), ref.linear_forward(x, w, b), "linear", "y")
    dx, dw, db = map(nat, native.linear_backward(dy, x, w))
    rdx, rdw, rdb = ref.linear_backward(dy, x, w)
    assert_close(dx / g, rdx / g, "linear", "dx")  # exact rescale to O(1)
    assert_close(dw, rdw, "linear", "dw")
    assert_close(db, rdb, "linear", "db")


def test_defaults(device, rng):
    x, w, _, _, _ = make(rng, 5, 13, 3, False)
    np.testing.assert_array_equal(nat(native.linear_forward(x, w)),
                                  nat(native.linear_forward(x, w, None)))


def test_backward_accumulates(device, rng):
    x, w, _, dy, g = make(rng, 5, 13, 3, False)
    _, rdw, rdb = ref.linear_backward(dy, x, w)
    dw0, db0 = randn(rng, 3, 13), randn(rng, 3)
    dw, db = dw0.copy(), db0.copy()
    dx, dw_out, db_out = native.linear_backward(dy, x, w, dw=dw, db=db)
    assert dx is not None
    assert np.shares_memory(nat(dw_out), dw) and np.shares_memory(nat(db_out), db)
    assert_close(dw, dw0 + rdw, "linear", "dw +=")
    assert_close(db, db0 + rdb, "linear", "db +=")
    dw, db = np.zeros_like(w), np.zeros(3, np.float32)
    for _ in range(2):
        dx, _, _ = native.linear_backward(dy, x, w, dw=dw, db=db, compute_dx=False)
        assert dx is None
    assert_close(dw, 2 * rdw, "linear", "2 dw")
    assert_close(db, 2 * rdb, "linear", "2 db")


def test_deterministic_and_thread_count_independent(device, rng):
    x, w, b, dy, g = make(rng, 128, 300, 96, True)

    def run():
        y = nat(native.linear_forward(x, w, b)).copy()
        return [y] + [nat(t).copy() for t in native.linear_backward(dy, x, w)]

    with num_threads(2):
        a, c = run(), run()
    for u, v in zip(a, c):
        np.testing.assert_array_equal(u, v)
    with num_threads(1):
        s = run()
    for u, v, name in zip(a, s, ("y", "dx", "dw", "db")):
        k = 1 / g if name == "dx" else 1.0
        assert_close(v * k, u * k, "linear", name + " 1 vs 2 threads")


FWD_BAD = [
    ("x float64", lambda x, w, b: (x.astype(np.float64), w, b), "x: "),
    ("w int64", lambda x, w, b: (x, w.astype(np.int64), b), "w: expected float32"),
    ("x rank 3", lambda x, w, b: (x[None], w, b), "x: expected 2-d"),
    ("w rank 1", lambda x, w, b: (x, w[0], b), "w: expected 2-d"),
    ("features", lambda x, w, b: (x, w[:, :4].copy(), b), "w: expects 4 input features but x"),
    ("b shape", lambda x, w, b: (x, w, b[:2].copy()), "b: expected shape"),
    ("b float64", lambda x, w, b: (x, w, b.astype(np.float64)), "b: "),
    ("x non-contiguous", lambda x, w, b: (noncontig(x), w, b), "x: array is not C-contig"),
    ("x empty", lambda x, w, b: (x[:0], w, b), "x: empty"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in FWD_BAD], ids=[c[0] for c in FWD_BAD])
def test_forward_rejects(rng, make_args, match):
    x, w, b, _, _ = make(rng, 5, 13, 3, True)
    with raises("linear_forward", match):
        native.linear_forward(*make_args(x, w, b))


BWD_BAD = [
    ("dy shape", lambda dy, x, w: ((dy[:, :2].copy(), x, w), {}), "dy: expected shape"),
    ("dy float64", lambda dy, x, w: ((dy.astype(np.float64), x, w), {}), "dy: "),
    ("dy rank", lambda dy, x, w: ((dy[0], x, w), {}), "dy: expected 2-d"),
    ("features", lambda dy, x, w: ((dy, x[:, :4].copy(), w), {}), "w: expects"),
    ("dw read-only", lambda dy, x, w: ((dy, x, w), {"dw": readonly(np.zeros_like(w))}),
     "dw: is updated in place"),
    ("db read-only", lambda dy, x, w: ((dy, x, w), {"db": readonly(np.zeros(3, np.float32))}),
     "db: is updated in place"),
    ("dw shape", lambda dy, x, w: ((dy, x, w), {"dw": np.zeros((13, 3), np.float32)}),
     "dw: expected shape"),
    ("dw int32", lambda dy, x, w: ((dy, x, w), {"dw": np.zeros((3, 13), np.int32)}),
     "dw: expected float32"),
    ("dy non-contiguous", lambda dy, x, w: ((noncontig(dy), x, w), {}), "dy: array is not"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in BWD_BAD], ids=[c[0] for c in BWD_BAD])
def test_backward_rejects(rng, make_args, match):
    x, w, _, dy, _ = make(rng, 5, 13, 3, False)
    args, kw = make_args(dy, x, w)
    with raises("linear_backward", match):
        native.linear_backward(*args, **kw)


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

@pytest.mark.parametrize("N,I,O,bias", [(1, 5, 3, True), (3, 5, 3, True), (3, 7, 4, False)])
def test_linear_gradcheck(N, I, O, bias):
    r = np.random.default_rng(N * 100 + I * 10 + O)
    x, w = r.standard_normal((N, I)), r.standard_normal((O, I))
    b = r.standard_normal(O) if bias else None
    R = r.standard_normal((N, O))
    dx, dw, db = ref.linear_backward(R, x, w)
    inputs = [x, w] + ([b] if bias else [])
    num = numeric_grads(lambda: proj(ref.linear_forward(x, w, b), R), inputs)
    assert_grads_close([dx, dw] + ([db] if bias else []), num, ["dx", "dw", "db"])


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,I,O,bias", [(1, 5, 3, True), (3, 7, 4, True), (4, 224, 7, False)])
def test_linear_vs_torch(torch, dtype, N, I, O, bias):
    F = torch.nn.functional
    r = np.random.default_rng(N + I + O)
    x, w = r.standard_normal((N, I)).astype(dtype), r.standard_normal((O, I)).astype(dtype)
    b = r.standard_normal(O).astype(dtype) if bias else None
    tx, tw = T(x, True), T(w, True)
    tb = T(b, True) if bias else None
    ty = F.linear(tx, tw, tb)
    close(ref.linear_forward(x, w, b), ty, dtype, "y")
    dy = r.standard_normal((N, O)).astype(dtype)
    ty.backward(T(dy))
    dx, dw, db = ref.linear_backward(dy, x, w)
    close(dx, tx.grad, dtype, "dx")
    close(dw, tw.grad, dtype, "dw")
    if bias:
        close(db, tb.grad, dtype, "db")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x2 = f(5, 3)
    return [(ref.linear_forward, [x2, f(2, 3), f(2)], ()),
            (ref.linear_backward, [f(5, 2), x2, f(2, 3)], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# linear.cu compiled for the CPU and compared with the CPU kernel on the same inputs, in
# guarded device buffers (tests/emulated.py); no GPU needed. dw and db accumulate into
# non-zero buffers.
# N, I, O, bias
EMULATED_CASES = [(5, 7, 3, True), (1, 1, 1, False), (2, 1, 5, True), (33, 200, 70, True),
                  (2, 300, 8, True), (3, 65, 40, False), (17, 3, 129, True),
                  (128, 300, 8, True),  # long batch reduction for dw and db
                  (8, 960, 7, True)]    # long reduction for y
EMULATED_PARTS = ["forward", "dx+dw+db", "dx+dw (db null)", "dw+db (dx null)"]


@pytest.mark.parametrize("part", EMULATED_PARTS)
@pytest.mark.parametrize("case", EMULATED_CASES, ids=[
    "N{}-I{}-O{}".format(*c) + ("" if c[3] else "-nobias") for c in EMULATED_CASES])
def test_emulated_linear(emulated, rng, case, part):
    N, I, O, bias = case
    ws = 1.0 / np.sqrt(np.float32(I))
    x, w = emulated.uniform(rng, N * I), emulated.uniform(rng, O * I, -ws, ws)
    b, dy = emulated.uniform(rng, O), emulated.uniform(rng, N * O)
    dw0, db0 = emulated.uniform(rng, w.size), emulated.uniform(rng, O)
    if part == "forward":
        y = np.zeros(N * O, np.float32)
        emulated.cpu.linear_forward(y, x, w, b if bias else None, N, I, O)
        yd = emulated.garbage(N * O)
        emulated.cuda.linear_forward(yd, x, w, b if bias else None, N, I, O)
        emulated.assert_close(yd, y, "linear", "y")
        return
    wdx, wdb = part != "dw+db (dx null)", part != "dx+dw (db null)"
    dx, dw, db = np.zeros(x.size, np.float32), dw0.copy(), db0.copy()
    emulated.cpu.linear_backward(dx if wdx else None, dw, db if wdb else None, dy, x, w, N, I, O)
    dxd, dwd, dbd = emulated.garbage(x.size), dw0.copy(), db0.copy()
    emulated.cuda.linear_backward(dxd if wdx else None, dwd, dbd if wdb else None, dy, x, w,
                                  N, I, O)
    if wdx:
        emulated.assert_close(dxd, dx, "linear", "dx")
    emulated.assert_close(dwd, dw, "linear", "dw")
    emulated.assert_close(dbd, db, "linear", "db")
    if not wdb:
        emulated.assert_exact(dbd, db0, "db (not requested)")
