"""Native softmax cross-entropy (one op: hard labels or soft targets) against the reference.

The reference itself, in the sections below the native tests: against float64 finite
differences and against PyTorch (skipped without it).
"""
import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads
from helpers import nat, noncontig, raises, randn, uniform
from tolerances import assert_close
from torch_oracle import DTYPES, T, close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


# (N, K, logit scale)
CASES = [(1, 3, 1.0), (5, 7, 1.0), (5, 13, 3.0), (2, 1, 1.0), (64, 7, 2.0), (3, 1000, 5.0),
         (13, 5, 30.0)]   # large logits: softmax saturates, the max-shift must be there
DLOSS = [1.0, 0.37, -2.5]


def _ids():
    return ["N{}K{}s{}".format(*c) for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_hard_labels(device, rng, case):
    N, K, s = case
    logits = randn(rng, N, K, scale=s, shift=1.0)
    labels = rng.integers(0, K, N).astype(np.int64)
    loss, prob = map(nat, native.cross_entropy_forward(logits, labels))
    rloss, rprob = ref.cross_entropy_forward(logits, labels)
    assert loss.shape == () and loss.dtype == np.float32
    assert_close(loss, rloss, "cross_entropy", "loss")
    assert_close(prob, rprob, "cross_entropy", "prob")
    for dloss in DLOSS:
        d = nat(native.cross_entropy_backward(prob, labels, dloss))
        assert_close(d, ref.cross_entropy_backward(rprob, labels, dloss), "cross_entropy",
                     f"dlogits dloss={dloss}")
    np.testing.assert_array_equal(nat(native.cross_entropy_backward(prob, labels)),
                                  nat(native.cross_entropy_backward(prob, labels, 1.0)))


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_soft_targets(device, rng, case):
    N, K, s = case
    logits = randn(rng, N, K, scale=s, shift=1.0)
    target = uniform(rng, N, K)
    target /= target.sum(axis=1, keepdims=True)
    target[0] *= 0.5  # one row not summing to 1 (label smoothing leftovers, mixup weights)
    loss, prob = map(nat, native.cross_entropy_forward(logits, target))
    rloss, rprob = ref.cross_entropy_forward(logits, target)
    assert loss.shape == () and loss.dtype == np.float32
    assert_close(loss, rloss, "cross_entropy", "soft loss")
    assert_close(prob, rprob, "cross_entropy", "soft prob")
    for dloss in DLOSS:
        d = nat(native.cross_entropy_backward(prob, target, dloss))
        assert_close(d, ref.cross_entropy_backward(rprob, target, dloss), "cross_entropy",
                     f"soft dlogits dloss={dloss}")


def test_soft_with_onehot_equals_hard(device, rng):
    logits = randn(rng, 6, 7, scale=2.0)
    labels = rng.integers(0, 7, 6).astype(np.int64)
    onehot = np.eye(7, dtype=np.float32)[labels]
    hl, hp = map(nat, native.cross_entropy_forward(logits, labels))
    sl, sp = map(nat, native.cross_entropy_forward(logits, onehot))
    assert_close(sl, hl, "cross_entropy", "loss")
    assert_close(nat(native.cross_entropy_backward(sp, onehot, 0.5)),
                 nat(native.cross_entropy_backward(hp, labels, 0.5)), "cross_entropy", "d")


def _hard_args(rng):
    return randn(rng, 4, 5), np.array([0, 4, 2, 1], np.int64)


FWD_BAD = [
    ("label too big", lambda l, y: (l, np.array([0, 5, 2, 1], np.int64)),
     r"target\[1\] = 5 is not a class in \[0, 5\)"),
    ("label negative", lambda l, y: (l, np.array([0, 1, -1, 1], np.int64)), r"target\[2\] = -1"),
    ("labels int32", lambda l, y: (l, y.astype(np.int32)), "target: expected int64"),
    # float labels are probabilities, which are [N, K]
    ("labels float", lambda l, y: (l, y.astype(np.float32)), "target: expected 2-d"),
    ("labels length", lambda l, y: (l, y[:3].copy()), "target: expected shape"),
    ("labels rank 2", lambda l, y: (l, y[:, None]), "target: expected 1-d"),
    ("logits float64", lambda l, y: (l.astype(np.float64), y), "logits: "),
    ("logits rank 3", lambda l, y: (l[None], y), "logits: expected 2-d"),
    ("logits empty", lambda l, y: (l[:0], y[:0]), "logits: empty"),
    ("logits non-contiguous", lambda l, y: (noncontig(l), y), "logits: array is not C-contig"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in FWD_BAD], ids=[c[0] for c in FWD_BAD])
def test_forward_rejects(rng, make_args, match):
    with raises("cross_entropy_forward", match):
        native.cross_entropy_forward(*make_args(*_hard_args(rng)))


@pytest.mark.parametrize("make_args,match", [c[1:] for c in FWD_BAD[:6] + FWD_BAD[9:]],
                         ids=[c[0] for c in FWD_BAD[:6] + FWD_BAD[9:]])
def test_backward_rejects(rng, make_args, match):
    match = match.replace("logits", "prob")
    with raises("cross_entropy_backward", match):
        native.cross_entropy_backward(*make_args(*_hard_args(rng)))


SOFT_BAD = [
    ("target shape", lambda l, t: (l, t[:, :3].copy()), "target: expected shape"),
    ("target float64", lambda l, t: (l, t.astype(np.float64)), "target: "),
    ("target rank 1", lambda l, t: (l, t[0]), "target: expected 2-d"),
    ("logits int64", lambda l, t: (l.astype(np.int64), t), "logits: expected float32"),
    ("target non-contiguous", lambda l, t: (l, noncontig(t)), "target: array is not C-contig"),
]


@pytest.mark.parametrize("make_args,match", [c[1:] for c in SOFT_BAD], ids=[c[0] for c in SOFT_BAD])
def test_soft_rejects(rng, make_args, match):
    logits, target = randn(rng, 4, 5), uniform(rng, 4, 5)
    with raises("cross_entropy_forward", match):
        native.cross_entropy_forward(*make_args(logits, target))
    with raises("cross_entropy_backward", match.replace("logits", "prob")):
        native.cross_entropy_backward(*make_args(logits, target))


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

@pytest.mark.parametrize("N,K", [(1, 5), (3, 5), (4, 7)])
def test_cross_entropy_hard_gradcheck(N, K):
    r = np.random.default_rng(N * K)
    logits = r.standard_normal((N, K)) * 3
    labels = r.integers(0, K, N).astype(np.int64)
    R = 0.7                                            # dloss: the projection of a scalar
    loss, prob = ref.cross_entropy_forward(logits, labels)
    assert loss.shape == () and prob.shape == (N, K)
    lsm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -lsm[np.arange(N), labels].mean(), rtol=1e-12)
    np.testing.assert_allclose(prob.sum(1), 1, rtol=1e-12)
    d = ref.cross_entropy_backward(prob, labels, R)
    (num,) = numeric_grads(lambda: float(ref.cross_entropy_forward(logits, labels)[0]) * R,
                           [logits])
    assert_grads_close([d], [num], ["dlogits"])


@pytest.mark.parametrize("normalised", [True, False])
@pytest.mark.parametrize("N,K", [(1, 5), (3, 5)])
def test_cross_entropy_soft_gradcheck(N, K, normalised):
    r = np.random.default_rng(N * K + normalised)
    logits = r.standard_normal((N, K)) * 3
    target = r.uniform(0, 1, (N, K))
    if normalised:
        target /= target.sum(1, keepdims=True)
    R = -1.3
    loss, prob = ref.cross_entropy_forward(logits, target)
    lsm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -(target * lsm).sum(1).mean(), rtol=1e-12)
    d = ref.cross_entropy_backward(prob, target, R)
    (num,) = numeric_grads(lambda: float(ref.cross_entropy_forward(logits, target)[0]) * R,
                           [logits])
    assert_grads_close([d], [num], ["dlogits"])


def test_cross_entropy_hard_equals_soft_onehot_and_is_stable():
    logits = np.array([[1000., 0., -1000.], [-5., 20., 3.]], np.float32)
    labels = np.array([0, 2], np.int64)
    loss, prob = ref.cross_entropy_forward(logits, labels)
    assert loss.dtype == np.float32 and np.isfinite(loss) and np.all(np.isfinite(prob))
    onehot = np.eye(3, dtype=np.float32)[labels]
    loss_s, prob_s = ref.cross_entropy_forward(logits, onehot)
    np.testing.assert_allclose(loss, loss_s, rtol=1e-6)
    np.testing.assert_allclose(ref.cross_entropy_backward(prob, labels),
                               ref.cross_entropy_backward(prob_s, onehot), atol=1e-7)
    with pytest.raises(ValueError, match=r"^\[cross_entropy\]"):
        ref.cross_entropy_forward(logits, np.array([0, 3], np.int64))


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,K,dloss", [(1, 5, 1.0), (3, 7, 1.0), (8, 7, 0.3)])
def test_cross_entropy_hard_vs_torch(torch, dtype, N, K, dloss):
    F = torch.nn.functional
    r = np.random.default_rng(N * K)
    logits = (r.standard_normal((N, K)) * 4).astype(dtype)
    labels = r.integers(0, K, N).astype(np.int64)
    tl = T(logits, True)
    tloss = F.cross_entropy(tl, T(labels))
    loss, prob = ref.cross_entropy_forward(logits, labels)
    assert loss.shape == () and loss.dtype == dtype
    close(loss, tloss, dtype, "loss")
    close(prob, torch.softmax(tl, 1), dtype, "prob")
    (tloss * dloss).backward()
    close(ref.cross_entropy_backward(prob, labels, dloss), tl.grad, dtype, "dlogits")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,K,dloss", [(1, 5, 1.0), (3, 7, 1.0), (8, 7, -2.0)])
def test_cross_entropy_soft_vs_torch(torch, dtype, N, K, dloss):
    F = torch.nn.functional
    r = np.random.default_rng(N * K + 1)
    logits = (r.standard_normal((N, K)) * 4).astype(dtype)
    target = r.uniform(0, 1, (N, K))
    target = (target / target.sum(1, keepdims=True)).astype(dtype)
    tl = T(logits, True)
    tloss = F.cross_entropy(tl, T(target))        # probability targets
    loss, prob = ref.cross_entropy_forward(logits, target)
    close(loss, tloss, dtype, "loss")
    close(prob, torch.softmax(tl, 1), dtype, "prob")
    (tloss * dloss).backward()
    close(ref.cross_entropy_backward(prob, target, dloss), tl.grad, dtype, "dlogits")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    logits, labels, target = f(3, 4), np.array([0, 3, 1], np.int64), np.abs(f(3, 4))
    return [(ref.cross_entropy_forward, [logits, labels], ()),
            (ref.cross_entropy_backward, [target, labels, 0.5], ()),
            (ref.cross_entropy_forward, [logits, target], ()),
            (ref.cross_entropy_backward, [target, target], ())]


    with raises("cross_entropy_soft_forward", match):
        native.cross_entropy_soft_forward(*make_args(logits, target))
    with raises("cross_entropy_soft_backward", match.replace("logits", "prob")):
        native.cross_entropy_soft_backward(*make_args(logits, target))


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# cross_entropy.cu compiled for the CPU and compared with the CPU kernel on the same inputs, in
# guarded device buffers (tests/emulated.py); no GPU needed. Hard labels and soft targets,
# K = 1 to 37, batches up to 1000, logits 160 apart (the max shift matters).
EMULATED_CASES = [(N, K) for K in (1, 2, 7, 37) for N in (1, 2, 33, 1000)]


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("targets", ["labels", "soft"])
@pytest.mark.parametrize("case", EMULATED_CASES,
                         ids=["N{}-K{}".format(*c) for c in EMULATED_CASES])
def test_emulated_cross_entropy(emulated, rng, case, targets, direction):
    N, K = case
    logits = emulated.uniform(rng, N * K, -3, 3)
    if N * K > 8:
        logits[3], logits[4] = 80.0, -80.0
    labels = rng.integers(0, K, N).astype(np.int64)
    target = emulated.uniform(rng, N * K, 0, 1)
    # One op: exactly one of labels and probabilities is given, the other is None (nullptr).
    lab, tgt = (None, target) if targets == "soft" else (labels, None)
    loss, prob = np.zeros(1, np.float32), np.zeros(N * K, np.float32)
    emulated.cpu.cross_entropy_forward(loss, prob, logits, lab, tgt, N, K)
    if direction == "forward":
        lossd, probd = emulated.garbage(1), emulated.garbage(N * K)
        emulated.cuda.cross_entropy_forward(lossd, probd, logits, lab, tgt, N, K)
        emulated.assert_close(lossd, loss, "cross_entropy", "loss")
        emulated.assert_close(probd, prob, "cross_entropy", "prob")
        return
    dloss = 0.7
    g, gd = np.zeros(N * K, np.float32), emulated.garbage(N * K)
    emulated.cpu.cross_entropy_backward(g, prob, lab, tgt, N, K, dloss)
    emulated.cuda.cross_entropy_backward(gd, prob, lab, tgt, N, K, dloss)
    emulated.assert_close(gd, g, "cross_entropy", "dlogits")
