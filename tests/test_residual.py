"""Native fused residual epilogue y = relu(batchnorm(x) + shortcut) against the reference
(and without a shortcut: relu(batchnorm(x))).

Training forward (y, saved statistics, running statistics in place), eval forward, backward
(dx, dshortcut, dgamma, dbeta, accumulation), determinism and argument validation.

The reference itself, in the sections below the native tests: against float64 finite
differences and against PyTorch (skipped without it).
"""
import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads, proj
from helpers import (bn_dx_unit, nat, noncontig, num_threads, pow2_scale, raises, randn, readonly,
                     uniform)
from tolerances import assert_close
from torch_oracle import DTYPES, T, close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


SHAPES = [(5, 3), (2, 13), (1, 3, 7, 9), (5, 13, 7, 9), (2, 5, 1, 1), (3, 8, 11, 5)]
PAPER = (8, 16, 48, 48)
HYPER = [(1e-5, 0.1), (1e-3, 0.3), (1e-5, 1.0)]


def _ids(cases):
    return ["x".join(map(str, c)) for c in cases]


def make(rng, shape):
    C = shape[1]
    cshape = (1, C) + (1,) * (len(shape) - 2)
    x = (randn(rng, *shape) * uniform(rng, *cshape, low=0.5, high=3.0)
         + randn(rng, *cshape, scale=2.0)).astype(np.float32)
    sc = randn(rng, *shape)
    gamma = uniform(rng, C, low=0.5, high=1.5)
    beta = randn(rng, C, scale=0.5)
    rm = randn(rng, C, scale=0.3)
    rv = uniform(rng, C, low=0.5, high=2.0)
    return x, sc, gamma, beta, rm, rv


def check(rng, shape, eps, mom, shortcut=True):
    x, sc, gamma, beta, rm, rv = make(rng, shape)
    sc = sc if shortcut else None  # None: y = relu(batchnorm(x)), no dshortcut
    rm_n, rv_n, rm_r, rv_r = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    y, m, s = map(nat, native.residual_forward_train(x, sc, gamma, beta, rm_n, rv_n, eps, mom))
    ry, rmean, rinv = ref.residual_forward_train(x, sc, gamma, beta, rm_r, rv_r, eps, mom)
    assert_close(y, ry, "residual", "y")
    assert_close(m, rmean, "residual", "save_mean")
    assert_close(s, rinv, "residual", "save_invstd")
    assert_close(rm_n, rm_r, "residual", "running_mean")
    assert_close(rv_n, rv_r, "residual", "running_var")
    # Backward from the reference's forward, so the ReLU mask is the same in both.
    g = pow2_scale(x.size // x.shape[1])
    dy = randn(rng, *shape, scale=g)
    dx, ds, dg, db = native.residual_backward(dy, ry, x, gamma, rmean, rinv,
                                              compute_dshortcut=shortcut)
    dx, dg, db = nat(dx), nat(dg), nat(db)
    rdx, rds, rdg, rdb = ref.residual_backward(dy, ry, x, gamma, rmean, rinv,
                                               compute_dshortcut=shortcut)
    u = bn_dx_unit(gamma, rinv, g, x.ndim)
    assert_close(dx / u, rdx / u, "residual", "dx")  # exact rescale to its natural scale
    if shortcut:
        assert_close(nat(ds) / g, rds / g, "residual", "dshortcut")
    else:
        assert ds is None and rds is None
    assert_close(dg, rdg, "residual", "dgamma")
    assert_close(db, rdb, "residual", "dbeta")
    ye = nat(native.residual_forward_eval(x, sc, gamma, beta, rm, rv, eps))
    assert_close(ye, ref.residual_forward_eval(x, sc, gamma, beta, rm, rv, eps), "residual",
                 "eval y")


@pytest.mark.parametrize("i", range(len(SHAPES)), ids=_ids(SHAPES))
def test_train_eval_backward(device, rng, i):
    check(rng, SHAPES[i], *HYPER[i % len(HYPER)])


def test_paper_shape(device, rng):
    check(rng, PAPER, 1e-5, 0.1)


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[3], PAPER], ids=_ids([SHAPES[0], SHAPES[3],
                                                                         PAPER]))
def test_without_shortcut_is_batchnorm_then_relu(device, rng, shape):
    check(rng, shape, 1e-5, 0.1, shortcut=False)


def test_defaults_and_accumulation(device, rng):
    x, sc, gamma, beta, rm, rv = make(rng, (4, 5, 3, 3))
    rm2, rv2 = rm.copy(), rv.copy()
    y, m, s = map(nat, native.residual_forward_train(x, sc, gamma, beta, rm, rv))
    y2 = nat(native.residual_forward_train(x, sc, gamma, beta, rm2, rv2, eps=1e-5,
                                           momentum=0.1)[0])
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(rm, rm2)
    dy = randn(rng, *x.shape, scale=pow2_scale(36))
    _, _, rdg, rdb = ref.residual_backward(dy, y, x, gamma, m, s)
    dg0, db0 = randn(rng, 5), randn(rng, 5)
    dg, db = dg0.copy(), db0.copy()
    _, _, dg_out, db_out = native.residual_backward(dy, y, x, gamma, m, s, dgamma=dg, dbeta=db)
    assert np.shares_memory(nat(dg_out), dg) and np.shares_memory(nat(db_out), db)
    assert_close(dg, dg0 + rdg, "residual", "dgamma +=")
    assert_close(db, db0 + rdb, "residual", "dbeta +=")
    dg, db = np.zeros(5, np.float32), np.zeros(5, np.float32)
    for _ in range(2):
        native.residual_backward(dy, y, x, gamma, m, s, dgamma=dg, dbeta=db)
    assert_close(dg, 2 * rdg, "residual", "2 dgamma")
    assert_close(db, 2 * rdb, "residual", "2 dbeta")


def test_deterministic_and_thread_count_independent(device, rng):
    x, sc, gamma, beta, rm, rv = make(rng, (8, 16, 24, 24))
    dy = randn(rng, *x.shape, scale=pow2_scale(8 * 24 * 24))

    def run():
        rm_, rv_ = rm.copy(), rv.copy()
        fw = [nat(t).copy() for t in native.residual_forward_train(x, sc, gamma, beta, rm_, rv_)]
        bw = [nat(t).copy() for t in native.residual_backward(dy, fw[0], x, gamma, fw[1], fw[2])]
        return fw + bw + [rm_, rv_]

    with num_threads(2):
        a, b = run(), run()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    with num_threads(1):
        c = run()
    for u, v in zip(a, c):
        assert_close(v, u, "residual", "1 vs 2 threads")


TRAIN_BAD = [
    ("shortcut shape", lambda a: a.__setitem__(1, a[1][:, :, :2].copy()), {},
     "shortcut: expected shape"),
    ("shortcut float64", lambda a: a.__setitem__(1, a[1].astype(np.float64)), {}, "shortcut: "),
    ("shortcut non-contiguous", lambda a: a.__setitem__(1, noncontig(a[1])), {},
     "shortcut: array is not C-contig"),
    ("x int64", lambda a: a.__setitem__(0, a[0].astype(np.int64)), {}, "x: expected float32"),
    ("x rank 3", lambda a: a.__setitem__(0, a[0][0]), {}, r"x: expected \[N, C\] or"),
    ("gamma shape", lambda a: a.__setitem__(2, a[2][:3].copy()), {}, "gamma: expected shape"),
    ("running_var read-only", lambda a: a.__setitem__(5, readonly(a[5])), {},
     "running_var: is updated in place"),
    ("one value per channel", lambda a: (a.__setitem__(0, a[0][:1, :, :1, :1].copy()),
                                         a.__setitem__(1, a[1][:1, :, :1, :1].copy())), {},
     "training mode needs more than one value"),
    ("eps 0", None, {"eps": 0.0}, "eps must be a positive number"),
    ("momentum -1", None, {"momentum": -1.0}, r"momentum must be in \[0, 1\]"),
]


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in TRAIN_BAD], ids=[c[0] for c in TRAIN_BAD])
def test_train_rejects(rng, edit, kw, match):
    a = list(make(rng, (4, 5, 3, 3)))
    if edit:
        edit(a)
    with raises("residual_forward_train", match):
        native.residual_forward_train(*a, **kw)


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in TRAIN_BAD[:6]] + [
    (lambda a: a.__setitem__(5, a[5][:2].copy()), {}, "running_var: expected shape"),
    (None, {"eps": -1.0}, "eps must be a positive number"),
], ids=[c[0] for c in TRAIN_BAD[:6]] + ["running_var shape", "eps negative"])
def test_eval_rejects(rng, edit, kw, match):
    a = list(make(rng, (4, 5, 3, 3)))
    if edit:
        edit(a)
    with raises("residual_forward_eval", match):
        native.residual_forward_eval(*a, **kw)


BWD_BAD = [
    ("y shape", lambda a: a.__setitem__(1, a[1][:2].copy()), {}, "y: expected shape"),
    ("dy shape", lambda a: a.__setitem__(0, a[0][:2].copy()), {}, "dy: expected shape"),
    ("dy float64", lambda a: a.__setitem__(0, a[0].astype(np.float64)), {}, "dy: "),
    ("save_mean shape", lambda a: a.__setitem__(4, a[4][:2].copy()), {},
     "save_mean: expected shape"),
    ("dgamma read-only", None, {"dgamma": readonly(np.zeros(5, np.float32))},
     "dgamma: is updated in place"),
    ("dbeta shape", None, {"dbeta": np.zeros(6, np.float32)}, "dbeta: expected shape"),
]


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in BWD_BAD], ids=[c[0] for c in BWD_BAD])
def test_backward_rejects(rng, edit, kw, match):
    x, sc, gamma, beta, rm, rv = make(rng, (4, 5, 3, 3))
    a = [randn(rng, *x.shape), np.abs(randn(rng, *x.shape)), x, gamma, randn(rng, 5),
         uniform(rng, 5, low=0.5, high=1.0)]
    if edit:
        edit(a)
    with raises("residual_backward", match):
        native.residual_backward(*a, **kw)


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (1, 3, 7, 9)])
def test_residual_gradcheck(shape):
    r = np.random.default_rng(shape[0] + 40)
    C = shape[1]
    x = r.standard_normal(shape)
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    s = r.standard_normal(shape)

    def fwd():
        return ref.residual_forward_train(x, s, gamma, beta, np.zeros(C), np.ones(C), 1e-5, 0.1)

    # Move the shortcut so the ReLU input bn(x) + s (from the batch statistics, as
    # reference/batchnorm.py computes it) is at least 1e-2 away from the kink.
    _, mean, invstd = fwd()
    c = (1, C, 1, 1)
    pre = (x - mean.reshape(c)) * invstd.reshape(c) * gamma.reshape(c) + beta.reshape(c) + s
    s += np.where(np.abs(pre) < 1e-2, np.sign(pre + 1e-30) * 2e-2, 0)
    y, mean, invstd = fwd()
    R = r.standard_normal(shape)
    dx, ds, dgamma, dbeta = ref.residual_backward(R, y, x, gamma, mean, invstd)
    num = numeric_grads(lambda: proj(fwd()[0], R), [x, s, gamma, beta])
    assert_grads_close([dx, ds, dgamma, dbeta], num, ["dx", "dshortcut", "dgamma", "dbeta"])


def test_residual_eval_is_relu_of_bn_eval_plus_shortcut():
    r = np.random.default_rng(41)
    x, s = r.standard_normal((2, 3, 7, 9)), r.standard_normal((2, 3, 7, 9))
    g, b, rm = r.standard_normal(3), r.standard_normal(3), r.standard_normal(3)
    rv = r.uniform(1, 2, 3)
    y = ref.residual_forward_eval(x, s, g, b, rm, rv, 1e-5)
    expect = (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5) * g[:, None, None]
    np.testing.assert_allclose(y, np.maximum(expect + b[:, None, None] + s, 0), rtol=1e-12)


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (1, 4, 6, 6)])
def test_residual_vs_torch(torch, dtype, shape):
    F = torch.nn.functional
    r = np.random.default_rng(sum(shape) + 7)
    C = shape[1]
    x, s = r.standard_normal(shape).astype(dtype), r.standard_normal(shape).astype(dtype)
    g, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    trm, trv = T(rm), T(rv)
    tx, ts, tg, tb = T(x, True), T(s, True), T(g, True), T(b, True)
    ty = F.relu(F.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=0.1, eps=1e-5) + ts)
    y, mean, invstd = ref.residual_forward_train(x, s, g, b, rm, rv, 1e-5, 0.1)
    close(y, ty, dtype, "y")
    close(rm, trm, dtype, "running_mean")
    close(rv, trv, dtype, "running_var")
    dy = r.standard_normal(shape).astype(dtype)
    ty.backward(T(dy))
    dx, ds, dg, db = ref.residual_backward(dy, y, x, g, mean, invstd)
    close(dx, tx.grad, dtype, "dx")
    close(ds, ts.grad, dtype, "dshortcut")
    close(dg, tg.grad, dtype, "dgamma")
    close(db, tb.grad, dtype, "dbeta")
    te = F.relu(F.batch_norm(T(x), T(rm0), T(rv0), T(g), T(b), training=False, eps=1e-5) + T(s))
    close(ref.residual_forward_eval(x, s, g, b, rm0, rv0, 1e-5), te, dtype, "y eval")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x, g, be = f(2, 3, 7, 9), f(3), f(3)
    _, bm, bi = ref.residual_forward_train(x, x, g, be, *stats(3))
    return [(ref.residual_forward_train, [x, x, g, be, *stats(3)], (4, 5)),
            (ref.residual_forward_eval, [x, x, g, be, *stats(3)], ()),
            (ref.residual_backward, [x, x, x, g, bm, bi], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# residual.cu compiled for the CPU and compared with the CPU kernel on the same inputs, in
# guarded device buffers (tests/emulated.py); no GPU needed. dgamma and dbeta accumulate into
# non-zero buffers; dx is compared in units of gamma * invstd * max |dy| per channel
# (emulated.bn_dx_unit).
# N, C, HW, pointer shift of x, y, dx (1: misaligned, the scalar path)
EMULATED_CASES = [(2, 3, 7, 0), (2, 4, 16, 0), (2, 4, 16, 1), (1, 2, 9, 0), (3, 5, 1, 0),
                  (4, 16, 576, 0)]
EMULATED_PARTS = ["forward_train", "forward_eval", "forward_train no shortcut",
                  "forward_eval no shortcut", "backward all", "backward dx only",
                  "backward dshortcut+dgamma+dbeta"]


@pytest.mark.parametrize("part", EMULATED_PARTS)
@pytest.mark.parametrize("case", EMULATED_CASES, ids=[
    "{}x{}x{}".format(*c) + ("-misaligned" if c[3] else "") for c in EMULATED_CASES])
def test_emulated_residual(emulated, rng, case, part):
    N, C, HW, shift = case
    eps, mom, n = 1e-5, 0.1, N * C * HW
    u, mis = emulated.uniform, emulated.misaligned
    x = u(rng, n, -1, 3)  # a non-zero mean, as after a ReLU
    gamma, beta, rm0, rv0 = u(rng, C, 0.5, 1.5), u(rng, C), u(rng, C), u(rng, C, 0.5, 2.0)
    dy, dg0, db0, sc = u(rng, n), u(rng, C), u(rng, C), u(rng, n)
    y, sm, si = np.zeros(n, np.float32), np.zeros(C, np.float32), np.zeros(C, np.float32)
    rm, rv = rm0.copy(), rv0.copy()
    if part.endswith("no shortcut"):  # y = relu(batchnorm(x))
        sc, part = None, part[:-len(" no shortcut")]
    emulated.cpu.residual_forward_train(y, sm, si, rm, rv, x, sc, gamma, beta, N, C, HW, eps, mom)
    if part == "forward_train":
        yd, smd, sid = emulated.garbage(n), emulated.garbage(C), emulated.garbage(C)
        rmd, rvd = rm0.copy(), rv0.copy()
        emulated.cuda.residual_forward_train(mis(yd, shift), smd, sid, rmd, rvd, mis(x, shift),
                                             sc, gamma, beta, N, C, HW, eps, mom)
        emulated.assert_close(yd, y, "residual", "y")
        emulated.assert_close(smd, sm, "residual", "save_mean")
        emulated.assert_close(sid, si, "residual", "save_invstd")
        emulated.assert_close(rmd, rm, "residual", "running_mean")
        emulated.assert_close(rvd, rv, "residual", "running_var")
    elif part == "forward_eval":
        ye = np.zeros(n, np.float32)
        emulated.cpu.residual_forward_eval(ye, x, sc, gamma, beta, rm0, rv0, N, C, HW, eps)
        yd = emulated.garbage(n)
        emulated.cuda.residual_forward_eval(mis(yd, shift), mis(x, shift), sc, gamma, beta, rm0,
                                            rv0, N, C, HW, eps)
        emulated.assert_close(yd, ye, "residual", "y")
    else:
        wdx = part != "backward dshortcut+dgamma+dbeta"
        wds = wpar = part != "backward dx only"
        dx, ds, dg, db = np.zeros(n, np.float32), np.zeros(n, np.float32), dg0.copy(), db0.copy()
        emulated.cpu.residual_backward(dx if wdx else None, ds if wds else None,
                                       dg if wpar else None, db if wpar else None, dy, y, x,
                                       gamma, sm, si, N, C, HW)
        dxd, dsd, dgd, dbd = emulated.garbage(n), emulated.garbage(n), dg0.copy(), db0.copy()
        emulated.cuda.residual_backward(mis(dxd, shift) if wdx else None, dsd if wds else None,
                                        dgd if wpar else None, dbd if wpar else None, dy,
                                        mis(y, shift), mis(x, shift), gamma, sm, si, N, C, HW)
        if wdx:
            emulated.assert_close(dxd, dx, "residual", "dx",
                                  emulated.bn_dx_unit(dy, gamma, si, N, C, HW))
        if wds:
            emulated.assert_close(dsd, ds, "residual", "dshortcut")
        emulated.assert_close(dgd, dg, "residual", "dgamma")
        emulated.assert_close(dbd, db, "residual", "dbeta")
