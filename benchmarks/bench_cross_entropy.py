"""Softmax cross-entropy on [N, 8] logits with integer labels, batch 128."""

import numpy as np

import shapes

N, K = shapes.BATCHES[0], shapes.CLASSES


def test_cross_entropy_forward_backward(benchmark, native, throughput, randn, rng):
    logits = randn(N, K)
    labels = rng.integers(0, K, N).astype(np.int64)

    def step():
        _, prob = native.cross_entropy_forward(logits, labels)
        return native.cross_entropy_backward(prob, labels, 1.0)

    benchmark.group = "cross_entropy"
    benchmark(step)
    throughput(benchmark, nbytes=shapes.F32 * N * K * 4)


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 110  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("cross_entropy", "cross-entropy forward+backward"),
]


def torch_cases(setting):
    """Forward + backward with integer labels against F.cross_entropy."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, rng, randn, leaf = setting.batch, setting.rng, setting.randn, setting.leaf
    case = setting.case
    cases = []
    k = shapes.CLASSES
    logits = randn(batch, k)
    labels = rng.integers(0, k, batch).astype(np.int64)
    tlog, tlab = leaf(logits), torch.from_numpy(labels)

    def ce_tfe():
        _, prob = native.cross_entropy_forward(logits, labels)
        native.cross_entropy_backward(prob, labels, 1.0)

    def ce_torch():
        grad(F.cross_entropy(tlog, tlab), tlog)

    def ce_check():
        loss, prob = native.cross_entropy_forward(logits, labels)
        tloss = F.cross_entropy(tlog, tlab)
        return [("loss", loss, tloss),
                ("dlogits", native.cross_entropy_backward(prob, labels, 1.0), grad(tloss, tlog)[0])]

    cases.append(case("cross_entropy", shapes.CROSS_ENTROPY.name, f"[{batch},{k}]", 1,
                      shapes.F32 * 4 * batch * k, "GB/s", ce_tfe, ce_torch, ce_check))
    return cases
