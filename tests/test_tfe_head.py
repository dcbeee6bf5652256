"""Native fused TFE head (BN1d over zi ++ ze, then linear) against the reference.

Training forward (logits, z_hat, saved statistics, running statistics in place), eval
forward, backward (dzi, dze, dgamma, dbeta, dw, db with accumulation), determinism and
argument validation.

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


# (N, Di, De, O)
CASES = [(2, 3, 5, 1), (5, 13, 3, 7), (5, 1, 1, 3), (7, 5, 13, 13), (33, 17, 9, 5),
         (128, 160, 64, 8)]   # paper: DeepID 160 ++ ResNet 64 features, 8 FER+ classes, batch 128
HYPER = [(1e-5, 0.1), (1e-3, 0.3), (1e-5, 1.0)]


def _ids():
    return ["N{}Di{}De{}O{}".format(*c) for c in CASES]


def make(rng, N, Di, De, O):
    D = Di + De
    zi = randn(rng, N, Di, scale=2.0, shift=0.5)
    ze = np.abs(randn(rng, N, De))  # after ReLU + GAP: non-negative
    gamma = uniform(rng, D, low=0.5, high=1.5)
    beta = randn(rng, D, scale=0.5)
    rm = randn(rng, D, scale=0.3)
    rv = uniform(rng, D, low=0.5, high=2.0)
    w = randn(rng, O, D, scale=np.sqrt(1.0 / D))
    b = randn(rng, O, scale=0.5)
    return zi, ze, gamma, beta, rm, rv, w, b


def check(rng, case, eps, mom):
    N, Di, De, O = case
    zi, ze, gamma, beta, rm, rv, w, b = make(rng, *case)
    rm_n, rv_n, rm_r, rv_r = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    out = [nat(t) for t in
           native.tfe_head_forward_train(zi, ze, gamma, beta, rm_n, rv_n, w, b, eps, mom)]
    rout = ref.tfe_head_forward_train(zi, ze, gamma, beta, rm_r, rv_r, w, b, eps, mom)
    for a, r, name in zip(out, rout, ("logits", "z_hat", "save_mean", "save_invstd")):
        assert_close(a, r, "tfe_head", name)
    assert_close(rm_n, rm_r, "tfe_head", "running_mean")
    assert_close(rv_n, rv_r, "tfe_head", "running_var")

    _, z_hat, m, s = rout
    g = pow2_scale(N)
    dl = randn(rng, N, O, scale=g)  # parameter gradients (sums over N) O(1)
    got = [nat(t) for t in native.tfe_head_backward(dl, zi, ze, z_hat, gamma, m, s, w)]
    want = ref.tfe_head_backward(dl, zi, ze, z_hat, gamma, m, s, w)
    # dz_hat[:, d] = dlogits w[:, d] is ~g * norm(w[:, d]): the BN input gradient's unit.
    u = bn_dx_unit(gamma, s, g * np.sqrt((w.astype(np.float64) ** 2).sum(axis=0)), 2)
    units = {"dzi": u[:, :Di], "dze": u[:, Di:]}
    for a, r, name in zip(got, want, ("dzi", "dze", "dgamma", "dbeta", "dw", "db")):
        k = units.get(name, 1.0)  # exact rescale of dzi, dze to their natural scale
        assert_close(a / k, r / k, "tfe_head", name)

    ev = [nat(t) for t in native.tfe_head_forward_eval(zi, ze, gamma, beta, rm, rv, w, b, eps)]
    rev = ref.tfe_head_forward_eval(zi, ze, gamma, beta, rm, rv, w, b, eps)
    assert_close(ev[0], rev[0], "tfe_head", "eval logits")
    assert_close(ev[1], rev[1], "tfe_head", "eval z_hat")


@pytest.mark.parametrize("i", range(len(CASES)), ids=_ids())
def test_train_eval_backward(device, rng, i):
    check(rng, CASES[i], *HYPER[i % len(HYPER)])


def test_defaults_and_accumulation(device, rng):
    zi, ze, gamma, beta, rm, rv, w, b = make(rng, 6, 5, 3, 4)
    rm2, rv2 = rm.copy(), rv.copy()
    lg, z, m, s = map(nat, native.tfe_head_forward_train(zi, ze, gamma, beta, rm, rv, w, b))
    lg2 = nat(native.tfe_head_forward_train(zi, ze, gamma, beta, rm2, rv2, w, b, eps=1e-5,
                                            momentum=0.1)[0])
    np.testing.assert_array_equal(lg, lg2)
    np.testing.assert_array_equal(rv, rv2)
    dl = randn(rng, 6, 4, scale=0.5)
    want = ref.tfe_head_backward(dl, zi, ze, z, gamma, m, s, w)[2:]
    acc0 = [randn(rng, *a.shape) for a in want]
    acc = [a.copy() for a in acc0]
    out = native.tfe_head_backward(dl, zi, ze, z, gamma, m, s, w, dgamma=acc[0], dbeta=acc[1],
                                   dw=acc[2], db=acc[3])
    for o, a, a0, r, name in zip(out[2:], acc, acc0, want, ("dgamma", "dbeta", "dw", "db")):
        assert np.shares_memory(nat(o), a), name
        assert_close(a, a0 + r, "tfe_head", name + " +=")
    acc = [np.zeros_like(a) for a in want]
    for _ in range(2):
        native.tfe_head_backward(dl, zi, ze, z, gamma, m, s, w, dgamma=acc[0], dbeta=acc[1],
                                 dw=acc[2], db=acc[3])
    for a, r, name in zip(acc, want, ("dgamma", "dbeta", "dw", "db")):
        assert_close(a, 2 * r, "tfe_head", "2 " + name)


def test_deterministic_and_thread_count_independent(device, rng):
    zi, ze, gamma, beta, rm, rv, w, b = make(rng, 256, 160, 64, 8)
    dl = randn(rng, 256, 8, scale=pow2_scale(256))

    def run():
        rm_, rv_ = rm.copy(), rv.copy()
        fw = [nat(t).copy() for t in
              native.tfe_head_forward_train(zi, ze, gamma, beta, rm_, rv_, w, b)]
        bw = [nat(t).copy() for t in
              native.tfe_head_backward(dl, zi, ze, fw[1], gamma, fw[2], fw[3], w)]
        return fw + bw + [rm_, rv_]

    with num_threads(2):
        a, c = run(), run()
    for u, v in zip(a, c):
        np.testing.assert_array_equal(u, v)
    with num_threads(1):
        s = run()
    for j, (u, v) in enumerate(zip(a, s)):
        k = 256 ** 0.5 if j in (4, 5) else 1.0  # dzi, dze: 2^4 = 1 / pow2_scale(256)
        assert_close(v * k, u * k, "tfe_head", "1 vs 2 threads")


def _args(rng):
    return list(make(rng, 6, 5, 3, 4))


TRAIN_BAD = [
    ("ze batch", lambda a: a.__setitem__(1, a[1][:5].copy()), {},
     "ze: batch 5 differs from zi's 6"),
    ("zi rank 3", lambda a: a.__setitem__(0, a[0][None]), {}, "zi: expected 2-d"),
    ("zi float64", lambda a: a.__setitem__(0, a[0].astype(np.float64)), {}, "zi: "),
    ("ze int64", lambda a: a.__setitem__(1, a[1].astype(np.int64)), {}, "ze: expected float32"),
    ("w features", lambda a: a.__setitem__(6, a[6][:, :7].copy()), {},
     "w: expects 7 features but zi \\+\\+ ze has 8"),
    ("b shape", lambda a: a.__setitem__(7, a[7][:3].copy()), {}, "b: expected shape"),
    ("gamma shape", lambda a: a.__setitem__(2, a[2][:5].copy()), {}, "gamma: expected shape"),
    ("running_mean read-only", lambda a: a.__setitem__(4, readonly(a[4])), {},
     "running_mean: is updated in place"),
    ("batch 1", lambda a: (a.__setitem__(0, a[0][:1].copy()), a.__setitem__(1, a[1][:1].copy())),
     {}, "training mode needs a batch of more than one"),
    ("zi non-contiguous", lambda a: a.__setitem__(0, noncontig(a[0])), {},
     "zi: array is not C-contig"),
    ("zi empty", lambda a: (a.__setitem__(0, a[0][:0]), a.__setitem__(1, a[1][:0])), {},
     "zi: empty"),
    ("eps 0", None, {"eps": 0.0}, "eps must be a positive number"),
    ("momentum 1.1", None, {"momentum": 1.1}, r"momentum must be in \[0, 1\]"),
]


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in TRAIN_BAD], ids=[c[0] for c in TRAIN_BAD])
def test_train_rejects(rng, edit, kw, match):
    a = _args(rng)
    if edit:
        edit(a)
    with raises("tfe_head_forward_train", match):
        native.tfe_head_forward_train(*a, **kw)


EVAL_BAD = [c for c in TRAIN_BAD if c[0] not in ("running_mean read-only", "batch 1",
                                                   "momentum 1.1")]


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in EVAL_BAD], ids=[c[0] for c in EVAL_BAD])
def test_eval_rejects(rng, edit, kw, match):
    a = _args(rng)
    if edit:
        edit(a)
    with raises("tfe_head_forward_eval", match):
        native.tfe_head_forward_eval(*a, **kw)


BWD_BAD = [
    ("dlogits shape", lambda a: a.__setitem__(0, a[0][:, :3].copy()), {},
     "dlogits: expected shape"),
    ("dlogits float64", lambda a: a.__setitem__(0, a[0].astype(np.float64)), {}, "dlogits: "),
    ("z_hat shape", lambda a: a.__setitem__(3, a[3][:, :7].copy()), {}, "z_hat: expected shape"),
    ("save_invstd shape", lambda a: a.__setitem__(6, a[6][:7].copy()), {},
     "save_invstd: expected shape"),
    ("ze batch", lambda a: a.__setitem__(2, a[2][:5].copy()), {}, "ze: batch 5 differs"),
    ("dw read-only", None, {"dw": readonly(np.zeros((4, 8), np.float32))},
     "dw: is updated in place"),
    ("db shape", None, {"db": np.zeros(5, np.float32)}, "db: expected shape"),
    ("dgamma float64", None, {"dgamma": np.zeros(8)}, "dgamma: "),
    ("dbeta read-only", None, {"dbeta": readonly(np.zeros(8, np.float32))},
     "dbeta: is updated in place"),
]


@pytest.mark.parametrize("edit,kw,match", [c[1:] for c in BWD_BAD], ids=[c[0] for c in BWD_BAD])
def test_backward_rejects(rng, edit, kw, match):
    zi, ze, gamma, beta, rm, rv, w, b = _args(rng)
    a = [randn(rng, 6, 4), zi, ze, randn(rng, 6, 8), gamma, randn(rng, 8),
         uniform(rng, 8, low=0.5, high=1.0), w]
    if edit:
        edit(a)
    with raises("tfe_head_backward", match):
        native.tfe_head_backward(*a, **kw)


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

@pytest.mark.parametrize("N,Di,De,O", [(3, 4, 5, 3), (2, 3, 2, 4), (5, 1, 3, 2)])
def test_tfe_head_gradcheck(N, Di, De, O):
    r = np.random.default_rng(N * 1000 + Di * 100 + De * 10 + O)
    D = Di + De
    zi, ze = r.standard_normal((N, Di)) * 2, r.standard_normal((N, De)) + 1
    gamma, beta = r.standard_normal(D), r.standard_normal(D)
    w, b = r.standard_normal((O, D)), r.standard_normal(O)

    def fwd():
        return ref.tfe_head_forward_train(zi, ze, gamma, beta, np.zeros(D), np.ones(D), w, b,
                                          1e-5, 0.1)

    logits, z_hat, mean, invstd = fwd()
    assert logits.shape == (N, O) and z_hat.shape == (N, D)
    R = r.standard_normal((N, O))
    grads = ref.tfe_head_backward(R, zi, ze, z_hat, gamma, mean, invstd, w)
    num = numeric_grads(lambda: proj(fwd()[0], R), [zi, ze, gamma, beta, w, b])
    assert_grads_close(list(grads), num, ["dzi", "dze", "dgamma", "dbeta", "dw", "db"])


def test_tfe_head_is_bn_of_each_part_then_linear():
    def bn_train(z, g, b, eps=1e-5):  # the formulas of reference/batchnorm.py, written out
        zc = z - z.mean(0)
        return zc * (1 / ((zc * zc).mean(0) + eps) ** 0.5) * g + b

    def bn_eval(z, g, b, rm, rv, eps=1e-5):
        return (z - rm) * (g * (1 / (rv + eps) ** 0.5)) + b

    r = np.random.default_rng(50)
    zi, ze = r.standard_normal((6, 4)), r.standard_normal((6, 3))
    g, b = r.standard_normal(7), r.standard_normal(7)
    w, bias = r.standard_normal((2, 7)), r.standard_normal(2)
    rm, rv = np.zeros(7), np.ones(7)
    logits, z_hat, _, _ = ref.tfe_head_forward_train(zi, ze, g, b, rm, rv, w, bias, 1e-5, 0.1)
    zi_hat, ze_hat = bn_train(zi, g[:4], b[:4]), bn_train(ze, g[4:], b[4:])
    np.testing.assert_allclose(z_hat, np.concatenate([zi_hat, ze_hat], 1), rtol=1e-12)
    np.testing.assert_allclose(logits, z_hat @ w.T + bias, rtol=1e-12)
    logits_e, z_hat_e = ref.tfe_head_forward_eval(zi, ze, g, b, rm, rv, w, bias, 1e-5)
    bn_e = bn_eval(np.concatenate([zi, ze], 1), g, b, rm, rv, 1e-5)
    np.testing.assert_allclose(z_hat_e, bn_e, rtol=1e-12)
    np.testing.assert_allclose(logits_e, bn_e @ w.T + bias, rtol=1e-12)


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,Di,De,O", [(3, 4, 5, 3), (2, 3, 2, 4), (16, 160, 64, 7)])
def test_tfe_head_vs_torch(torch, dtype, N, Di, De, O):
    F = torch.nn.functional
    r = np.random.default_rng(N + Di + De + O)
    D = Di + De
    zi = (r.standard_normal((N, Di)) * 3).astype(dtype)
    ze = (r.uniform(0, 2, (N, De))).astype(dtype)          # post-ReLU/GAP-like features
    g, b = r.standard_normal(D).astype(dtype), r.standard_normal(D).astype(dtype)
    w, bias = (r.standard_normal((O, D)) / 8).astype(dtype), r.standard_normal(O).astype(dtype)
    rm, rv = r.standard_normal(D).astype(dtype), r.uniform(0.5, 2, D).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    trm, trv = T(rm), T(rv)
    tzi, tze, tg, tb, tw, tbias = (T(a, True) for a in (zi, ze, g, b, w, bias))
    tz = F.batch_norm(torch.cat([tzi, tze], 1), trm, trv, tg, tb, training=True, momentum=0.1,
                      eps=1e-5)
    tlogits = F.linear(tz, tw, tbias)
    logits, z_hat, mean, invstd = ref.tfe_head_forward_train(zi, ze, g, b, rm, rv, w, bias,
                                                             1e-5, 0.1)
    close(logits, tlogits, dtype, "logits")
    close(z_hat, tz, dtype, "z_hat")
    close(rm, trm, dtype, "running_mean")
    close(rv, trv, dtype, "running_var")
    dl = r.standard_normal((N, O)).astype(dtype)
    tlogits.backward(T(dl))
    grads = ref.tfe_head_backward(dl, zi, ze, z_hat, g, mean, invstd, w)
    for mine, t, name in zip(grads, (tzi, tze, tg, tb, tw, tbias),
                             ("dzi", "dze", "dgamma", "dbeta", "dw", "db")):
        close(mine, t.grad, dtype, name)
    tz_e = F.batch_norm(torch.cat([T(zi), T(ze)], 1), T(rm0), T(rv0), T(g), T(b),
                        training=False, eps=1e-5)
    logits_e, z_hat_e = ref.tfe_head_forward_eval(zi, ze, g, b, rm0, rv0, w, bias, 1e-5)
    close(z_hat_e, tz_e, dtype, "z_hat eval")
    close(logits_e, F.linear(tz_e, T(w), T(bias)), dtype, "logits eval")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    zi, ze, hw, hb, hg, hbeta = f(3, 2), f(3, 3), f(2, 5), f(2), f(5), f(5)
    _, zh, sm, si = ref.tfe_head_forward_train(zi, ze, hg, hbeta, *stats(5), hw, hb)
    return [(ref.tfe_head_forward_train, [zi, ze, hg, hbeta, *stats(5), hw, hb], (4, 5)),
            (ref.tfe_head_forward_eval, [zi, ze, hg, hbeta, *stats(5), hw, hb], ()),
            (ref.tfe_head_backward, [f(3, 2), zi, ze, zh, hg, sm, si, hw], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# tfe_head.cu compiled for the CPU and compared with the CPU kernel on the same inputs, in
# guarded device buffers (tests/emulated.py); no GPU needed. dgamma, dbeta, dw and db
# accumulate into non-zero buffers; dzi and dze are compared in units of gamma * invstd *
# max |dz| per feature, dz = dlogits w (emulated.bn_dx_unit).
EMULATED_CASES = [(4, 5, 3, 2), (2, 33, 7, 7), (37, 20, 1, 3), (3, 1, 1, 1), (9, 40, 30, 8),
                  (64, 100, 60, 7)]  # N, Di, De, O


@pytest.mark.parametrize("part", ["forward_train", "forward_eval", "backward"])
@pytest.mark.parametrize("case", EMULATED_CASES,
                         ids=["N{}-Di{}-De{}-O{}".format(*c) for c in EMULATED_CASES])
def test_emulated_tfe_head(emulated, rng, case, part):
    N, Di, De, O = case
    D, eps, mom = Di + De, 1e-5, 0.1
    u = emulated.uniform
    zi, ze = u(rng, N * Di, -1, 3), u(rng, N * De, -2, 1)
    gamma, beta, rm0, rv0 = u(rng, D, 0.5, 1.5), u(rng, D), u(rng, D), u(rng, D, 0.5, 2.0)
    w, b, dl = u(rng, O * D, -0.3, 0.3), u(rng, O), u(rng, N * O)
    dg0, dbt0, dw0, db0 = u(rng, D), u(rng, D), u(rng, O * D), u(rng, O)
    lg, zh = np.zeros(N * O, np.float32), np.zeros(N * D, np.float32)
    sm, si, rm, rv = np.zeros(D, np.float32), np.zeros(D, np.float32), rm0.copy(), rv0.copy()
    emulated.cpu.tfe_head_forward_train(lg, zh, sm, si, rm, rv, zi, ze, gamma, beta, w, b,
                                        N, Di, De, O, eps, mom)
    if part == "forward_train":
        lgd, zhd = emulated.garbage(N * O), emulated.garbage(N * D)
        smd, sid, rmd, rvd = emulated.garbage(D), emulated.garbage(D), rm0.copy(), rv0.copy()
        emulated.cuda.tfe_head_forward_train(lgd, zhd, smd, sid, rmd, rvd, zi, ze, gamma, beta,
                                             w, b, N, Di, De, O, eps, mom)
        for what, got, want in (("logits", lgd, lg), ("z_hat", zhd, zh), ("save_mean", smd, sm),
                                ("save_invstd", sid, si), ("running_mean", rmd, rm),
                                ("running_var", rvd, rv)):
            emulated.assert_close(got, want, "tfe_head", what)
    elif part == "forward_eval":
        le, ze_hat = np.zeros(N * O, np.float32), np.zeros(N * D, np.float32)
        emulated.cpu.tfe_head_forward_eval(le, ze_hat, zi, ze, gamma, beta, rm0, rv0, w, b,
                                           N, Di, De, O, eps)
        led, zhd = emulated.garbage(N * O), emulated.garbage(N * D)
        emulated.cuda.tfe_head_forward_eval(led, zhd, zi, ze, gamma, beta, rm0, rv0, w, b,
                                            N, Di, De, O, eps)
        emulated.assert_close(led, le, "tfe_head", "logits")
        emulated.assert_close(zhd, ze_hat, "tfe_head", "z_hat")
    else:
        dzi, dze = np.zeros(N * Di, np.float32), np.zeros(N * De, np.float32)
        dg, dbt, dw, db = dg0.copy(), dbt0.copy(), dw0.copy(), db0.copy()
        emulated.cpu.tfe_head_backward(dzi, dze, dg, dbt, dw, db, dl, zi, ze, zh, gamma, sm, si,
                                       w, N, Di, De, O)
        dzid, dzed = emulated.garbage(N * Di), emulated.garbage(N * De)
        dgd, dbtd, dwd, dbd = dg0.copy(), dbt0.copy(), dw0.copy(), db0.copy()
        emulated.cuda.tfe_head_backward(dzid, dzed, dgd, dbtd, dwd, dbd, dl, zi, ze, zh, gamma,
                                        sm, si, w, N, Di, De, O)
        # dz[n, d] = sum_o dlogits[n, o] w[o, d], then the batch-norm backward per feature
        dz = (dl.reshape(N, O).astype(np.float64) @ w.reshape(O, D)).astype(np.float32)
        unit = emulated.bn_dx_unit(dz, gamma, si, N, D, 1).reshape(N, D)
        emulated.assert_close(dzid, dzi, "tfe_head", "dzi", unit[:, :Di])
        emulated.assert_close(dzed, dze, "tfe_head", "dze", unit[:, Di:])
        for what, got, want in (("dgamma", dgd, dg), ("dbeta", dbtd, dbt), ("dw", dwd, dw),
                                ("db", dbd, db)):
            emulated.assert_close(got, want, "tfe_head", what)
