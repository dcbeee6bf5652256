"""Native SGD step (sgd_step: PyTorch semantics, dampening 0) against the reference.

Several steps in a row over a list of tensors of different sizes (a conv weight, a bias, a
BN scale, one big enough for the kernel's threads), updated in place.

The reference itself, in the sections below the native tests: against PyTorch's formulas
element by element in Python floats, and against PyTorch (skipped without it).
"""
import numpy as np
import pytest

from devices import native, ref
from helpers import noncontig, num_threads, raises, randn, readonly
from tolerances import assert_close
from torch_oracle import DTYPES, T, close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


SIZES = [(16, 3, 3, 3), (16,), (1,), (13, 5), (64, 1024)]
# (lr, momentum, weight_decay, nesterov)
HYPER = [
    (0.1, 0.0, 0.0, False),
    (0.01, 0.0, 5e-4, False),
    (0.05, 0.9, 0.0, False),
    (0.01, 0.9, 5e-4, False),
    (0.01, 0.9, 5e-4, True),
    (0.3, 0.5, 1e-2, True),
    (0.0, 0.9, 5e-4, False),   # lr 0: params stay, buffers still advance
]


def _ids():
    return ["lr{}_m{}_wd{}{}".format(lr, m, wd, "_nesterov" if n else "") for lr, m, wd, n in HYPER]


@pytest.mark.parametrize("hyper", HYPER, ids=_ids())
def test_steps_match_reference(device, rng, hyper):
    lr, mom, wd, nesterov = hyper
    p_n = [randn(rng, *s) for s in SIZES]
    p_r = [p.copy() for p in p_n]
    b_n = [np.zeros(s, np.float32) for s in SIZES]
    b_r = [b.copy() for b in b_n]
    for step in range(4):
        grads = [randn(rng, *s) for s in SIZES]
        ids_before = [id(p) for p in p_n]
        out = native.sgd_step(p_n, grads, b_n if mom else None, lr, mom, wd, nesterov)
        assert out is None
        ref.sgd_step(p_r, grads, b_r if mom else None, lr, mom, wd, nesterov)
        assert [id(p) for p in p_n] == ids_before
        for j in range(len(SIZES)):
            assert_close(p_n[j], p_r[j], "sgd", f"param {j} step {step}")
            assert_close(b_n[j], b_r[j], "sgd", f"buf {j} step {step}")


def test_momentum_zero_ignores_buffers(device, rng):
    p = randn(rng, 5, 13)
    g = randn(rng, 5, 13)
    buf = np.full((5, 13), 7.0, np.float32)
    p_r = p.copy()
    native.sgd_step([p], [g], [buf], 0.1, 0.0, 0.0, False)
    ref.sgd_step([p_r], [g], None, 0.1, 0.0, 0.0, False)
    assert_close(p, p_r, "sgd", "param")
    np.testing.assert_array_equal(buf, 7.0)
    native.sgd_step([p], [g], None, 0.1)  # defaults momentum=0, wd=0, nesterov=False
    ref.sgd_step([p_r], [g], None, 0.1, 0.0, 0.0, False)
    assert_close(p, p_r, "sgd", "param, defaults")


def test_empty_list_is_a_no_op(device):
    assert native.sgd_step([], [], None, 0.1, 0.9, 0.0, False) is None


def test_thread_count_independent(device, rng):
    shapes = [(256, 300), (7,)]
    res = []
    for t in (1, 2):
        r = np.random.default_rng(5)
        ps = [randn(r, *s) for s in shapes]
        bs = [np.zeros(s, np.float32) for s in shapes]
        with num_threads(t):
            for _ in range(3):
                native.sgd_step(ps, [randn(r, *s) for s in shapes], bs, 0.1, 0.9, 1e-4, True)
        res.append(ps + bs)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)  # elementwise: no thread-dependent rounding


def _lists(rng):
    p = [randn(rng, 3, 4), randn(rng, 5)]
    g = [randn(rng, 3, 4), randn(rng, 5)]
    b = [np.zeros((3, 4), np.float32), np.zeros(5, np.float32)]
    return p, g, b


BAD = [
    ("lengths", lambda p, g, b: ((p, g[:1], b, 0.1, 0.9, 0, False), {}),
     r"params and grads differ in length \(2 vs 1\)"),
    ("bufs length", lambda p, g, b: ((p, g, b[:1], 0.1, 0.9, 0, False), {}),
     "momentum_bufs: one buffer per parameter"),
    ("no bufs with momentum", lambda p, g, b: ((p, g, None, 0.1, 0.9, 0, False), {}),
     "momentum_bufs: one buffer per parameter"),
    ("negative lr", lambda p, g, b: ((p, g, b, -0.1, 0.9, 0, False), {}), "lr must be >= 0"),
    ("nan lr", lambda p, g, b: ((p, g, b, float("nan"), 0.9, 0, False), {}), "lr must be >= 0"),
    ("inf lr", lambda p, g, b: ((p, g, b, float("inf"), 0.9, 0, False), {}), "lr must be >= 0"),
    ("negative momentum", lambda p, g, b: ((p, g, b, 0.1, -0.9, 0, False), {}),
     r"momentum must be in \[0, 1\)"),
    ("momentum 1", lambda p, g, b: ((p, g, b, 0.1, 1.0, 0, False), {}),
     r"momentum must be in \[0, 1\)"),
    ("negative weight decay", lambda p, g, b: ((p, g, b, 0.1, 0.9, -1e-4, False), {}),
     "weight_decay must be >= 0"),
    ("nesterov without momentum", lambda p, g, b: ((p, g, b, 0.1, 0.0, 0, True), {}),
     "nesterov needs momentum > 0"),
    ("grad shape", lambda p, g, b: ((p, [g[0], g[1][:4].copy()], b, 0.1, 0.9, 0, False), {}),
     r"grads\[1\]: expected shape"),
    ("buf shape", lambda p, g, b: ((p, g, [b[0], b[1][:4].copy()], 0.1, 0.9, 0, False), {}),
     r"momentum_bufs\[1\]: expected shape"),
    ("param float64", lambda p, g, b: (([p[0].astype(np.float64), p[1]], g, b, 0.1, 0.9, 0, False),
                                       {}), r"params\[0\]: "),
    ("grad int64", lambda p, g, b: ((p, [g[0], g[1].astype(np.int64)], b, 0.1, 0.9, 0, False), {}),
     r"grads\[1\]: expected float32"),
    ("param read-only", lambda p, g, b: (([p[0], readonly(p[1])], g, b, 0.1, 0.9, 0, False), {}),
     r"params\[1\]: is updated in place but the array is read-only"),
    ("buf read-only", lambda p, g, b: ((p, g, [readonly(b[0]), b[1]], 0.1, 0.9, 0, False), {}),
     r"momentum_bufs\[0\]: is updated in place"),
    ("param non-contiguous", lambda p, g, b: (([noncontig(p[0]), p[1]], g, b, 0.1, 0.9, 0, False),
                                              {}), r"params\[0\]: array is not C-contig"),
    ("grad non-contiguous", lambda p, g, b: ((p, [noncontig(g[0]), g[1]], b, 0.1, 0.9, 0, False),
                                             {}), r"grads\[0\]: array is not C-contig"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_rejects_and_updates_nothing(rng, make_args, match):
    p, g, b = _lists(rng)
    args, kw = make_args(p, g, b)
    before = [np.array(a, copy=True) for a in p + b]
    with raises("sgd_step", match):
        native.sgd_step(*args, **kw)
    for a, c in zip(p + b, before):  # validation happens before any update
        np.testing.assert_array_equal(a, c)


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

def sgd_loop(params, grads_per_step, lr, momentum, wd, nesterov):
    """PyTorch's SGD formulas, element by element in Python floats (float64)."""
    ps = [list(map(float, p.ravel())) for p in params]
    bufs = [[0.0] * len(p) for p in ps]
    for grads in grads_per_step:
        for p, buf, g in zip(ps, bufs, grads):
            g = list(map(float, g.ravel()))
            for i in range(len(p)):
                d = g[i] + wd * p[i] if wd != 0 else g[i]
                if momentum != 0:
                    buf[i] = momentum * buf[i] + d
                    d = d + momentum * buf[i] if nesterov else buf[i]
                p[i] = p[i] - lr * d
    return ps, bufs


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("wd", [0.0, 5e-3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_three_steps_against_loop(momentum, nesterov, wd, dtype):
    r = np.random.default_rng(31)
    shapes = [(3, 4), (5,), (2, 3, 1, 2)]
    params = [r.standard_normal(s).astype(dtype) for s in shapes]
    grads_per_step = [[r.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    expect_p, expect_b = sgd_loop(params, grads_per_step, 0.1, momentum, wd, nesterov)
    bufs = [np.zeros(s, dtype) for s in shapes]
    ids = [id(p) for p in params]
    for grads in grads_per_step:
        assert ref.sgd_step(params, grads, bufs, 0.1, momentum, wd, nesterov) is None
    assert [id(p) for p in params] == ids
    tol = dict(rtol=0, atol=0) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for p, b, ep, eb in zip(params, bufs, expect_p, expect_b):
        assert p.dtype == dtype
        np.testing.assert_allclose(p.ravel(), ep, **tol)
        np.testing.assert_allclose(b.ravel(), eb, **tol)


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,wd,nesterov", [(0.0, 0.0, False), (0.0, 1e-2, False),
                                                  (0.9, 0.0, False), (0.9, 5e-4, False),
                                                  (0.9, 0.0, True), (0.9, 5e-4, True)])
def test_sgd_vs_torch(torch, dtype, momentum, wd, nesterov):
    r = np.random.default_rng(5)
    shapes = [(4, 3, 3, 3), (4,), (7, 5)]
    params = [r.standard_normal(s).astype(dtype) for s in shapes]
    tparams = [T(p, True) for p in params]
    opt = torch.optim.SGD(tparams, lr=0.05, momentum=momentum, weight_decay=wd,
                          nesterov=nesterov)
    bufs = [np.zeros(s, dtype) for s in shapes]
    for _ in range(3):
        grads = [r.standard_normal(s).astype(dtype) for s in shapes]
        for t, g in zip(tparams, grads):
            t.grad = T(g)
        opt.step()
        ref.sgd_step(params, grads, bufs, 0.05, momentum, wd, nesterov)
    for p, b, t in zip(params, bufs, tparams):
        close(p, t, dtype, "param")
        if momentum != 0:
            close(b, opt.state[t]["momentum_buffer"], dtype, "momentum_buffer")


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# sgd.cu compiled for the CPU and compared bit for bit with the CPU kernel on the same inputs,
# in guarded device buffers (tests/emulated.py); no GPU needed. Two steps (the momentum buffers
# in use from the second on); 33 and 70 tensors are more than one launch's parameter table,
# with empty, large and float4-boundary sizes; every third parameter is misaligned.
EMULATED_CASES = [(count, mode, wd) for count in (1, 5, 33, 70)
                  for mode in ("plain", "momentum", "nesterov") for wd in (0.0, 5e-4)
                  if count > 1 or wd == 0.0]


@pytest.mark.parametrize("count,mode,wd", EMULATED_CASES,
                         ids=[f"count{c}-{m}-wd{w:g}" for c, m, w in EMULATED_CASES])
def test_emulated_sgd(emulated, rng, count, mode, wd):
    lr, mom, nesterov = 0.013, 0.0 if mode == "plain" else 0.9, mode == "nesterov"
    sizes = rng.integers(0, 301, count).astype(np.int64)
    if count >= 33:
        sizes[[3, 20, 31, 32]] = [5000, 0, 4096, 4097]
    P = [emulated.uniform(rng, s) for s in sizes]
    B = [emulated.uniform(rng, s) for s in sizes]  # in use from the second step on
    G = [emulated.uniform(rng, s) for s in sizes]
    Pd, Bd = [p.copy() for p in P], [b.copy() for b in B]
    for _ in range(2):
        emulated.cpu.sgd_step(P, B if mom else [None] * count, G, sizes, count, lr, mom, wd,
                              nesterov)
        emulated.cuda.sgd_step([emulated.misaligned(p, j % 3 == 1) for j, p in enumerate(Pd)],
                               Bd if mom else [None] * count, G, sizes, count, lr, mom, wd,
                               nesterov)
    for j in range(count):
        emulated.assert_exact(Pd[j], P[j], f"param[{j}]")
        emulated.assert_exact(Bd[j], B[j], f"momentum_buf[{j}]")
