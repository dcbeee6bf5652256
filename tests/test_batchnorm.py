"""Native batch norm (BatchNorm1d on [N, C], BatchNorm2d on [N, C, H, W]) against the reference.

Training forward (y, save_mean, save_invstd and the in-place running-statistics update),
eval forward, backward (dx, dgamma, dbeta, accumulation into caller buffers), several
training steps in a row, determinism and argument validation.

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


SHAPES = [
    (5, 3),            # BatchNorm1d, odd batch
    (2, 13),           # the smallest training batch
    (64, 5),
    (1, 3, 7, 9),      # batch 1: statistics over one image
    (5, 13, 7, 9),
    (2, 5, 1, 1),      # 2 values per channel
    (3, 8, 11, 5),
]
PAPER = (8, 16, 48, 48)
# (eps, momentum) pairs cycled over the shapes
HYPER = [(1e-5, 0.1), (1e-3, 0.3), (1e-5, 1.0), (0.5, 0.0)]


def _ids(cases):
    return ["x".join(map(str, c)) for c in cases]


def make(rng, shape):
    C = shape[1]
    # Non-zero mean and non-unit spread per channel, as after a conv layer.
    cshape = (1, C) + (1,) * (len(shape) - 2)
    x = (randn(rng, *shape) * uniform(rng, *cshape, low=0.5, high=3.0)
         + randn(rng, *cshape, scale=2.0)).astype(np.float32)
    gamma = uniform(rng, C, low=0.5, high=1.5)
    beta = randn(rng, C, scale=0.5)
    rm = randn(rng, C, scale=0.3)
    rv = uniform(rng, C, low=0.5, high=2.0)
    return x, gamma, beta, rm, rv


def check_train(x, gamma, beta, rm, rv, eps, mom):
    rm_n, rv_n, rm_r, rv_r = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    y, m, s = map(nat, native.batchnorm_forward_train(x, gamma, beta, rm_n, rv_n, eps, mom))
    ry, rmean, rinv = ref.batchnorm_forward_train(x, gamma, beta, rm_r, rv_r, eps, mom)
    assert_close(y, ry, "batchnorm", "y")
    assert_close(m, rmean, "batchnorm", "save_mean")
    assert_close(s, rinv, "batchnorm", "save_invstd")
    assert_close(rm_n, rm_r, "batchnorm", "running_mean")
    assert_close(rv_n, rv_r, "batchnorm", "running_var")
    return y, m, s


def check_backward(rng, x, gamma, m, s):
    M = x.size // x.shape[1]
    g = pow2_scale(M)
    dy = randn(rng, *x.shape, scale=g)  # dgamma, dbeta (sums over M) are O(1)
    dx, dg, db = map(nat, native.batchnorm_backward(dy, x, gamma, m, s))
    rdx, rdg, rdb = ref.batchnorm_backward(dy, x, gamma, m, s)
    u = bn_dx_unit(gamma, s, g, x.ndim)
    assert_close(dx / u, rdx / u, "batchnorm", "dx")  # exact rescale to its natural scale
    assert_close(dg, rdg, "batchnorm", "dgamma")
    assert_close(db, rdb, "batchnorm", "dbeta")
    return dy


@pytest.mark.parametrize("i", range(len(SHAPES)), ids=_ids(SHAPES))
def test_train_forward_and_backward(device, rng, i):
    x, gamma, beta, rm, rv = make(rng, SHAPES[i])
    eps, mom = HYPER[i % len(HYPER)]
    _, m, s = check_train(x, gamma, beta, rm, rv, eps, mom)
    # The backward from the reference's saved statistics too, so each half is tested alone.
    _, rmean, rinv = ref.batchnorm_forward_train(x, gamma, beta, rm.copy(), rv.copy(), eps, mom)
    check_backward(rng, x, gamma, rmean, rinv)


@pytest.mark.parametrize("i", range(len(SHAPES)), ids=_ids(SHAPES))
def test_eval_forward(device, rng, i):
    x, gamma, beta, rm, rv = make(rng, SHAPES[i])
    eps = HYPER[i % len(HYPER)][0]
    rm0, rv0 = rm.copy(), rv.copy()
    y = nat(native.batchnorm_forward_eval(x, gamma, beta, rm, rv, eps))
    assert_close(y, ref.batchnorm_forward_eval(x, gamma, beta, rm, rv, eps), "batchnorm", "y")
    np.testing.assert_array_equal(rm, rm0)  # eval never touches the running statistics
    np.testing.assert_array_equal(rv, rv0)


def test_paper_shape(device, rng):
    x, gamma, beta, rm, rv = make(rng, PAPER)
    _, m, s = check_train(x, gamma, beta, rm, rv, 1e-5, 0.1)
    check_backward(rng, x, gamma, m, s)
    y = nat(native.batchnorm_forward_eval(x, gamma, beta, rm, rv))
    assert_close(y, ref.batchnorm_forward_eval(x, gamma, beta, rm, rv), "batchnorm", "eval y")


@pytest.mark.parametrize("shape", [(6, 13), (3, 5, 7, 9)], ids=_ids([(6, 13), (3, 5, 7, 9)]))
def test_running_stats_over_several_steps(device, rng, shape):
    _, gamma, beta, rm, rv = make(rng, shape)
    rm_n, rv_n = rm.copy(), rv.copy()
    for step in range(4):
        x = make(rng, shape)[0]
        out = native.batchnorm_forward_train(x, gamma, beta, rm_n, rv_n, 1e-5, 0.1)
        ref.batchnorm_forward_train(x, gamma, beta, rm, rv, 1e-5, 0.1)
        del out
        assert_close(rm_n, rm, "batchnorm", f"running_mean step {step}")
        assert_close(rv_n, rv, "batchnorm", f"running_var step {step}")


def test_defaults(device, rng):
    x, gamma, beta, rm, rv = make(rng, (4, 5, 3, 3))
    rm2, rv2 = rm.copy(), rv.copy()
    y1 = nat(native.batchnorm_forward_train(x, gamma, beta, rm, rv)[0])
    y2 = nat(native.batchnorm_forward_train(x, gamma, beta, rm2, rv2, eps=1e-5, momentum=0.1)[0])
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(rm, rm2)
    np.testing.assert_array_equal(rv, rv2)


def test_backward_accumulates(device, rng):
    x, gamma, beta, rm, rv = make(rng, (5, 13, 7, 9))
    _, m, s = ref.batchnorm_forward_train(x, gamma, beta, rm, rv)
    dy = randn(rng, *x.shape, scale=pow2_scale(5 * 63))
    _, rdg, rdb = ref.batchnorm_backward(dy, x, gamma, m, s)
    dg0, db0 = randn(rng, 13), randn(rng, 13)
    dg, db = dg0.copy(), db0.copy()
    _, dg_out, db_out = native.batchnorm_backward(dy, x, gamma, m, s, dgamma=dg, dbeta=db)
    assert np.shares_memory(nat(dg_out), dg) and np.shares_memory(nat(db_out), db)
    assert_close(dg, dg0 + rdg, "batchnorm", "dgamma +=")
    assert_close(db, db0 + rdb, "batchnorm", "dbeta +=")
    dg, db = np.zeros(13, np.float32), np.zeros(13, np.float32)
    for _ in range(2):
        native.batchnorm_backward(dy, x, gamma, m, s, dgamma=dg, dbeta=db)
    assert_close(dg, 2 * rdg, "batchnorm", "2 dgamma")
    assert_close(db, 2 * rdb, "batchnorm", "2 dbeta")


@pytest.mark.parametrize("shape", [(256, 96), (8, 16, 24, 24)], ids=["1d", "2d"])
def test_deterministic_and_thread_count_independent(device, rng, shape):
    x, gamma, beta, rm, rv = make(rng, shape)
    dy = randn(rng, *shape, scale=pow2_scale(x.size // shape[1]))

    def run():
        rm_, rv_ = rm.copy(), rv.copy()
        fw = [nat(t).copy() for t in native.batchnorm_forward_train(x, gamma, beta, rm_, rv_)]
        bw = [nat(t).copy() for t in native.batchnorm_backward(dy, x, gamma, fw[1], fw[2])]
        return fw + bw + [rm_, rv_]

    with num_threads(2):
        a, b = run(), run()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    with num_threads(1):
        c = run()
    for u, v in zip(a, c):
        assert_close(v, u, "batchnorm", "1 vs 2 threads")


# ---- argument validation -------------------------------------------------------------------

def _args(rng, shape=(4, 5, 3, 3)):
    return list(make(rng, shape))


TRAIN_BAD = [
    ("x float64", lambda a: a.__setitem__(0, a[0].astype(np.float64)), {}, "x: "),
    ("x int32", lambda a: a.__setitem__(0, a[0].astype(np.int32)), {}, "x: expected float32"),
    ("x rank 3", lambda a: a.__setitem__(0, a[0][0]), {}, r"x: expected \[N, C\] or"),
    ("x rank 1", lambda a: a.__setitem__(0, a[0].ravel()), {}, r"x: expected \[N, C\] or"),
    ("x non-contiguous", lambda a: a.__setitem__(0, noncontig(a[0])), {}, "x: array is not"),
    ("x empty", lambda a: a.__setitem__(0, a[0][:0]), {}, "x: empty"),
    ("batch 1 of 1d", lambda a: a.__setitem__(0, a[0][:1, :, 0, 0].copy()), {},
     "training mode needs more than one value"),
    ("1x1 map batch 1", lambda a: a.__setitem__(0, a[0][:1, :, :1, :1].copy()), {},
     "training mode needs more than one value"),
    ("gamma shape", lambda a: a.__setitem__(1, a[1][:4].copy()), {}, "gamma: expected shape"),
    ("beta float64", lambda a: a.__setitem__(2, a[2].astype(np.float64)), {}, "beta: "),
    ("running_mean shape", lambda a: a.__setitem__(3, a[3][:3].copy()), {},
     "running_mean: expected shape"),
    ("running_mean read-only", lambda a: a.__setitem__(3, readonly(a[3])), {},
     "running_mean: is updated in place"),
    ("running_var read-only", lambda a: a.__setitem__(4, readonly(a[4])), {},
     "running_var: is updated in place"),
    ("running_var int64", lambda a: a.__setitem__(4, a[4].astype(np.int64)), {},
     "running_var: expected float32"),
    ("eps 0", None, {"eps": 0.0}, "eps must be a positive number"),
    ("eps negative", None, {"eps": -1e-5}, "eps must be a positive number"),
    ("eps nan", None, {"eps": float("nan")}, "eps must be a positive number"),
    ("momentum negative", None, {"momentum": -0.1}, r"momentum must be in \[0, 1\]"),
    ("momentum > 1", None, {"momentum": 1.5}, r"momentum must be in \[0, 1\]"),
]


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in TRAIN_BAD], ids=[c[0] for c in TRAIN_BAD])
def test_train_rejects(rng, edit, kw, match):
    a = _args(rng)
    if edit:
        edit(a)
    with raises("batchnorm_forward_train", match):
        native.batchnorm_forward_train(*a, **kw)


def test_rejected_train_leaves_running_stats_alone(rng):
    x, gamma, beta, rm, rv = _args(rng)
    rm0, rv0 = rm.copy(), rv.copy()
    with raises("batchnorm_forward_train"):
        native.batchnorm_forward_train(x, gamma, beta, rm, rv, momentum=2.0)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


EVAL_BAD = [
    ("x float64", lambda a: a.__setitem__(0, a[0].astype(np.float64)), {}, "x: "),
    ("x rank 3", lambda a: a.__setitem__(0, a[0][0]), {}, r"x: expected \[N, C\] or"),
    ("running_var shape", lambda a: a.__setitem__(4, a[4][:2].copy()), {},
     "running_var: expected shape"),
    ("gamma non-contiguous", lambda a: a.__setitem__(1, noncontig(a[1])), {},
     "gamma: array is not"),
    ("eps 0", None, {"eps": 0.0}, "eps must be a positive number"),
]


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in EVAL_BAD], ids=[c[0] for c in EVAL_BAD])
def test_eval_rejects(rng, edit, kw, match):
    a = _args(rng)
    if edit:
        edit(a)
    with raises("batchnorm_forward_eval", match):
        native.batchnorm_forward_eval(*a, **kw)


def test_eval_accepts_read_only_stats_and_batch_1(rng):
    x, gamma, beta, rm, rv = _args(rng)
    y = nat(native.batchnorm_forward_eval(x[:1, :, :1, :1].copy(), gamma, beta, readonly(rm),
                                          readonly(rv)))
    assert_close(y, ref.batchnorm_forward_eval(x[:1, :, :1, :1], gamma, beta, rm, rv),
                 "batchnorm", "eval y")


BWD_BAD = [
    ("dy shape", lambda a: a.__setitem__(0, a[0][:, :, :2].copy()), {}, "dy: expected shape"),
    ("dy float64", lambda a: a.__setitem__(0, a[0].astype(np.float64)), {}, "dy: "),
    ("x rank 3", lambda a: a.__setitem__(1, a[1][0]), {}, r"x: expected \[N, C\] or"),
    ("save_mean shape", lambda a: a.__setitem__(3, a[3][:2].copy()), {},
     "save_mean: expected shape"),
    ("save_invstd int64", lambda a: a.__setitem__(4, a[4].astype(np.int64)), {},
     "save_invstd: expected float32"),
    ("dgamma read-only", None, {"dgamma": readonly(np.zeros(5, np.float32))},
     "dgamma: is updated in place"),
    ("dbeta shape", None, {"dbeta": np.zeros(4, np.float32)}, "dbeta: expected shape"),
    ("dbeta float64", None, {"dbeta": np.zeros(5)}, "dbeta: "),
]


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in BWD_BAD], ids=[c[0] for c in BWD_BAD])
def test_backward_rejects(rng, edit, kw, match):
    x, gamma, beta, rm, rv = _args(rng)
    a = [randn(rng, *x.shape), x, gamma, randn(rng, 5), uniform(rng, 5, low=0.5, high=1)]
    if edit:
        edit(a)
    with raises("batchnorm_backward", match):
        native.batchnorm_backward(*a, **kw)


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

@pytest.mark.parametrize("shape", [(3, 5), (2, 3), (7, 4), (3, 5, 7, 9), (1, 3, 7, 9)])
def test_batchnorm_train_gradcheck(shape):
    r = np.random.default_rng(len(shape) * 10 + shape[0])
    C = shape[1]
    x = r.standard_normal(shape) * 2 + 0.5
    gamma, beta = r.standard_normal(C), r.standard_normal(C)

    def fwd():
        return ref.batchnorm_forward_train(x, gamma, beta, np.zeros(C), np.ones(C), 1e-5, 0.1)

    y, mean, invstd = fwd()
    R = r.standard_normal(y.shape)
    dx, dgamma, dbeta = ref.batchnorm_backward(R, x, gamma, mean, invstd)
    num = numeric_grads(lambda: proj(fwd()[0], R), [x, gamma, beta])
    assert_grads_close([dx, dgamma, dbeta], num, ["dx", "dgamma", "dbeta"])


@pytest.mark.parametrize("shape", [(4, 3), (3, 5, 7, 9)])
def test_batchnorm_eval_gradcheck(shape):
    """Eval mode is affine in x: dx = dy * gamma / sqrt(running_var + eps)."""
    r = np.random.default_rng(5)
    C = shape[1]
    x = r.standard_normal(shape)
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    rm, rv = r.standard_normal(C), r.uniform(0.5, 2, C)
    R = r.standard_normal(shape)
    bshape = (1, C) + (1,) * (len(shape) - 2)
    (num,) = numeric_grads(
        lambda: proj(ref.batchnorm_forward_eval(x, gamma, beta, rm, rv, 1e-5), R), [x])
    assert_grads_close([R * (gamma / np.sqrt(rv + 1e-5)).reshape(bshape)], [num], ["dx"])


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 7, 9)])
def test_batchnorm_statistics_and_running_update(shape):
    r = np.random.default_rng(7)
    C = shape[1]
    x = r.standard_normal(shape) * 3 - 1
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    rm0, rv0 = r.standard_normal(C), r.uniform(0.5, 2, C)
    rm, rv = rm0.copy(), rv0.copy()
    eps, mom = 1e-3, 0.25
    y, mean, invstd = ref.batchnorm_forward_train(x, gamma, beta, rm, rv, eps, mom)
    per_channel = np.moveaxis(x, 1, 0).reshape(C, -1)          # [C, M]
    np.testing.assert_allclose(mean, per_channel.mean(1), rtol=1e-12)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(per_channel.var(1) + eps), rtol=1e-12)
    np.testing.assert_allclose(rm, (1 - mom) * rm0 + mom * per_channel.mean(1), rtol=1e-12)
    np.testing.assert_allclose(rv, (1 - mom) * rv0 + mom * per_channel.var(1, ddof=1),
                               rtol=1e-12)
    # The normalised output has zero mean and (biased) variance var / (var + eps) per channel.
    yc = np.moveaxis((y - beta.reshape((1, C) + (1,) * (len(shape) - 2))), 1, 0).reshape(C, -1)
    yc = yc / gamma[:, None]
    np.testing.assert_allclose(yc.mean(1), 0, atol=1e-12)
    v = per_channel.var(1)
    np.testing.assert_allclose(yc.var(1), v / (v + eps), rtol=1e-10)


def test_batchnorm_train_needs_two_values():
    with pytest.raises(ValueError, match=r"^\[batchnorm\]"):
        ref.batchnorm_forward_train(np.ones((1, 3)), np.ones(3), np.zeros(3), np.zeros(3),
                                    np.ones(3))


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (2, 4), (3, 5, 7, 9), (1, 3, 7, 9)])
def test_batchnorm_train_vs_torch(torch, dtype, shape):
    r = np.random.default_rng(sum(shape))
    C = shape[1]
    x = (r.standard_normal(shape) * 2 + 1).astype(dtype)
    g, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    eps, mom = 1e-5, 0.1
    trm, trv = T(rm), T(rv)
    tx, tg, tb = T(x, True), T(g, True), T(b, True)
    ty, tmean, tinvstd = torch.ops.aten.native_batch_norm(tx, tg, tb, trm, trv, True, mom, eps)
    y, mean, invstd = ref.batchnorm_forward_train(x, g, b, rm, rv, eps, mom)
    close(y, ty, dtype, "y")
    close(mean, tmean, dtype, "save_mean")
    close(invstd, tinvstd, dtype, "save_invstd")
    close(rm, trm, dtype, "running_mean")
    close(rv, trv, dtype, "running_var")
    dy = r.standard_normal(shape).astype(dtype)
    ty.backward(T(dy))
    dx, dg, db = ref.batchnorm_backward(dy, x, g, mean, invstd)
    close(dx, tx.grad, dtype, "dx")
    close(dg, tg.grad, dtype, "dgamma")
    close(db, tb.grad, dtype, "dbeta")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (3, 5, 7, 9)])
def test_batchnorm_eval_vs_torch(torch, dtype, shape):
    F = torch.nn.functional
    r = np.random.default_rng(sum(shape) + 1)
    C = shape[1]
    x = r.standard_normal(shape).astype(dtype)
    g, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    ty = F.batch_norm(T(x), T(rm), T(rv), T(g), T(b), training=False, eps=1e-5)
    close(ref.batchnorm_forward_eval(x, g, b, rm, rv, 1e-5), ty, dtype, "y")


def test_batchnorm_running_stats_over_steps_like_module(torch):
    """Three training steps of nn.BatchNorm2d with non-default momentum and eps."""
    r = np.random.default_rng(3)
    bn = torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.3).double()
    rm, rv = np.zeros(4), np.ones(4)
    for _ in range(3):
        x = r.standard_normal((3, 4, 5, 7)) * 2 + 1
        ty = bn(T(x))
        y, _, _ = ref.batchnorm_forward_train(x, bn.weight.detach().numpy(),
                                              bn.bias.detach().numpy(), rm, rv, 1e-3, 0.3)
        close(y, ty, np.float64, "y")
    close(rm, bn.running_mean, np.float64, "running_mean")
    close(rv, bn.running_var, np.float64, "running_var")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x, x2, g, be = f(2, 3, 7, 9), f(5, 3), f(3), f(3)
    _, bm, bi = ref.batchnorm_forward_train(x, g, be, *stats(3))
    return [(ref.batchnorm_forward_train, [x, g, be, *stats(3)], (3, 4)),
            (ref.batchnorm_forward_train, [x2, g, be, *stats(3)], (3, 4)),
            (ref.batchnorm_forward_eval, [x, g, be, *stats(3), 1e-5], ()),
            (ref.batchnorm_backward, [x, x, g, bm, bi], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# batchnorm.cu compiled for the CPU and compared with the CPU kernel on the same inputs, in
# guarded device buffers (tests/emulated.py); no GPU needed. dgamma and dbeta accumulate into
# non-zero buffers; dx is compared in units of gamma * invstd * max |dy| per channel
# (emulated.bn_dx_unit: it is a cancellation).
# N, C, HW, pointer shift of x, y, dx, dy (1: misaligned, the scalar path)
EMULATED_CASES = [(2, 3, 7, 0), (1, 2, 5, 0),
                  (2, 4, 16, 0),     # HW % 4 == 0, aligned: float4 path
                  (2, 4, 16, 1),     # same shape, misaligned: scalar path
                  (3, 1, 36, 0),
                  (2, 3, 2000, 0),   # several chunks per channel
                  (2, 5, 1, 0),      # BatchNorm1d: columns layout
                  (40, 33, 1, 0),    # two column tiles, more rows than row groups
                  (1, 3, 2, 0),      # N = 1
                  (8, 16, 2304, 0),  # a paper layer: 8x16x48x48
                  (130, 70, 1, 0)]   # BatchNorm1d, three column tiles
EMULATED_PARTS = ["forward_train", "forward_train (no running stats)", "forward_eval",
                  "backward dx+dgamma+dbeta", "backward dx only", "backward dgamma+dbeta only"]


def _emulated_bn_inputs(emulated, rng, N, C, HW):
    n = N * C * HW
    u = emulated.uniform
    return dict(x=u(rng, n, -1, 3),  # a non-zero mean, as after a ReLU
                gamma=u(rng, C, 0.5, 1.5), beta=u(rng, C), rm=u(rng, C), rv=u(rng, C, 0.5, 2.0),
                dy=u(rng, n), dg0=u(rng, C), db0=u(rng, C))


@pytest.mark.parametrize("part", EMULATED_PARTS)
@pytest.mark.parametrize("case", EMULATED_CASES, ids=[
    "{}x{}x{}".format(*c) + ("-misaligned" if c[3] else "") for c in EMULATED_CASES])
def test_emulated_batchnorm(emulated, rng, case, part):
    N, C, HW, shift = case
    eps, mom = 1e-5, 0.1
    a = _emulated_bn_inputs(emulated, rng, N, C, HW)
    x, gamma, beta, dy, n = a["x"], a["gamma"], a["beta"], a["dy"], N * C * HW
    y, sm, si = np.zeros(n, np.float32), np.zeros(C, np.float32), np.zeros(C, np.float32)
    rm, rv = a["rm"].copy(), a["rv"].copy()
    emulated.cpu.batchnorm_forward_train(y, sm, si, rm, rv, x, gamma, beta, N, C, HW, eps, mom)
    mis = emulated.misaligned
    if part.startswith("forward_train"):
        running = "no running" not in part
        yd, smd, sid = emulated.garbage(n), emulated.garbage(C), emulated.garbage(C)
        rmd, rvd = a["rm"].copy(), a["rv"].copy()
        emulated.cuda.batchnorm_forward_train(mis(yd, shift), smd, sid, rmd if running else None,
                                              rvd if running else None, mis(x, shift), gamma,
                                              beta, N, C, HW, eps, mom)
        emulated.assert_close(yd, y, "batchnorm", "y")
        emulated.assert_close(smd, sm, "batchnorm", "save_mean")
        emulated.assert_close(sid, si, "batchnorm", "save_invstd")
        if running:
            emulated.assert_close(rmd, rm, "batchnorm", "running_mean")
            emulated.assert_close(rvd, rv, "batchnorm", "running_var")
        else:
            emulated.assert_exact(rmd, a["rm"], "running_mean (null)")
    elif part == "forward_eval":
        ye = np.zeros(n, np.float32)
        emulated.cpu.batchnorm_forward_eval(ye, x, gamma, beta, a["rm"], a["rv"], N, C, HW, eps)
        yd = emulated.garbage(n)
        emulated.cuda.batchnorm_forward_eval(mis(yd, shift), mis(x, shift), gamma, beta, a["rm"],
                                             a["rv"], N, C, HW, eps)
        emulated.assert_close(yd, ye, "batchnorm", "y")
    else:
        wdx, wpar = part != "backward dgamma+dbeta only", part != "backward dx only"
        dx, dg, db = np.zeros(n, np.float32), a["dg0"].copy(), a["db0"].copy()
        emulated.cpu.batchnorm_backward(dx if wdx else None, dg if wpar else None,
                                        db if wpar else None, dy, x, gamma, sm, si, N, C, HW)
        dxd, dgd, dbd = emulated.garbage(n), a["dg0"].copy(), a["db0"].copy()
        emulated.cuda.batchnorm_backward(mis(dxd, shift) if wdx else None, dgd if wpar else None,
                                         dbd if wpar else None, mis(dy, shift), mis(x, shift),
                                         gamma, sm, si, N, C, HW)
        if wdx:
            emulated.assert_close(dxd, dx, "batchnorm", "dx",
                                  emulated.bn_dx_unit(dy, gamma, si, N, C, HW))
        emulated.assert_close(dgd, dg, "batchnorm", "dgamma")
        emulated.assert_close(dbd, db, "batchnorm", "dbeta")
