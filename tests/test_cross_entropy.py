"""Native softmax cross-entropy (hard labels and soft targets) against the reference."""
import numpy as np
import pytest

from devices import native, ref
from helpers import nat, noncontig, raises, randn, uniform
from tolerances import assert_close

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
    loss, prob = map(nat, native.cross_entropy_soft_forward(logits, target))
    rloss, rprob = ref.cross_entropy_soft_forward(logits, target)
    assert loss.shape == () and loss.dtype == np.float32
    assert_close(loss, rloss, "cross_entropy", "soft loss")
    assert_close(prob, rprob, "cross_entropy", "soft prob")
    for dloss in DLOSS:
        d = nat(native.cross_entropy_soft_backward(prob, target, dloss))
        assert_close(d, ref.cross_entropy_soft_backward(rprob, target, dloss), "cross_entropy",
                     f"soft dlogits dloss={dloss}")


def test_soft_with_onehot_equals_hard(device, rng):
    logits = randn(rng, 6, 7, scale=2.0)
    labels = rng.integers(0, 7, 6).astype(np.int64)
    onehot = np.eye(7, dtype=np.float32)[labels]
    hl, hp = map(nat, native.cross_entropy_forward(logits, labels))
    sl, sp = map(nat, native.cross_entropy_soft_forward(logits, onehot))
    assert_close(sl, hl, "cross_entropy", "loss")
    assert_close(nat(native.cross_entropy_soft_backward(sp, onehot, 0.5)),
                 nat(native.cross_entropy_backward(hp, labels, 0.5)), "cross_entropy", "d")


def _hard_args(rng):
    return randn(rng, 4, 5), np.array([0, 4, 2, 1], np.int64)


FWD_BAD = [
    ("label too big", lambda l, y: (l, np.array([0, 5, 2, 1], np.int64)),
     r"labels\[1\] = 5 is not a class in \[0, 5\)"),
    ("label negative", lambda l, y: (l, np.array([0, 1, -1, 1], np.int64)), r"labels\[2\] = -1"),
    ("labels int32", lambda l, y: (l, y.astype(np.int32)), "labels: expected int64"),
    ("labels float", lambda l, y: (l, y.astype(np.float32)), "labels: expected int64"),
    ("labels length", lambda l, y: (l, y[:3].copy()), "labels: expected shape"),
    ("labels rank 2", lambda l, y: (l, y[:, None]), "labels: expected 1-d"),
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
    soft = targets == "soft"
    loss, prob = np.zeros(1, np.float32), np.zeros(N * K, np.float32)
    if soft:
        emulated.cpu.cross_entropy_soft_forward(loss, prob, logits, target, N, K)
    else:
        emulated.cpu.cross_entropy_forward(loss, prob, logits, labels, N, K)
    if direction == "forward":
        lossd, probd = emulated.garbage(1), emulated.garbage(N * K)
        if soft:
            emulated.cuda.cross_entropy_soft_forward(lossd, probd, logits, target, N, K)
        else:
            emulated.cuda.cross_entropy_forward(lossd, probd, logits, labels, N, K)
        emulated.assert_close(lossd, loss, "cross_entropy", "loss")
        emulated.assert_close(probd, prob, "cross_entropy", "prob")
        return
    dloss = 0.7
    g, gd = np.zeros(N * K, np.float32), emulated.garbage(N * K)
    if soft:
        emulated.cpu.cross_entropy_soft_backward(g, prob, target, N, K, dloss)
        emulated.cuda.cross_entropy_soft_backward(gd, prob, target, N, K, dloss)
    else:
        emulated.cpu.cross_entropy_backward(g, prob, labels, N, K, dloss)
        emulated.cuda.cross_entropy_backward(gd, prob, labels, N, K, dloss)
    emulated.assert_close(gd, g, "cross_entropy", "dlogits")
