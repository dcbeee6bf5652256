"""Dropout (p = 0.4, counter-based RNG) on DeepID's [N, 160] feature, batch 128."""

import math

import numpy as np

import shapes

N = shapes.BATCHES[0]
ACT, P = shapes.DROPOUT, shapes.DROPOUT_P


def test_dropout_forward(benchmark, native, throughput, randn):
    x = randn(*ACT.shape(N))
    benchmark.group = "dropout"
    y, mask = benchmark(native.dropout_forward, x, P, 7)
    throughput(benchmark, nbytes=(2 * shapes.F32 + 1) * ACT.numel(N), shape=ACT.shape(N))


def test_dropout_forward_backward(benchmark, native, throughput, randn):
    x, dy = randn(*ACT.shape(N)), randn(*ACT.shape(N))

    def step():
        _, mask = native.dropout_forward(x, P, 7)
        return native.dropout_backward(dy, mask, P)

    benchmark.group = "dropout"
    benchmark(step)
    throughput(benchmark, nbytes=shapes.DROPOUT_BYTES_PER_ELEM * ACT.numel(N), shape=ACT.shape(N))


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 90  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("dropout", "dropout forward+backward (different RNGs; tfe checked against its own mask)"),
]


def torch_cases(setting):
    """Forward + backward against F.dropout. The two libraries draw different random
    numbers, so the check is tfe's own consistency."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    cases = []
    act, p_drop = shapes.DROPOUT, shapes.DROPOUT_P
    x, dy = randn(*act.shape(batch)), randn(*act.shape(batch))
    tx, tdy = leaf(x), torch.from_numpy(dy)

    def drop_tfe(x=x, dy=dy):
        _, mask = native.dropout_forward(x, p_drop, 7)
        native.dropout_backward(dy, mask, p_drop)

    def drop_torch(tx=tx, tdy=tdy):
        grad(F.dropout(tx, p_drop, True), tx, tdy)

    def drop_check(x=x, dy=dy):
        # torch draws other random numbers, so tfe is checked against its own mask:
        # y = x * mask / (1 - p), dx = dy * mask / (1 - p), kept fraction within 5 sigma of 1 - p
        y, mask = native.dropout_forward(x, p_drop, 7)
        m = np.asarray(mask).astype(np.float32)
        keep, q = float(m.mean()), 1 - p_drop
        near = abs(keep - q) <= 5 * math.sqrt(q * (1 - q) / m.size)
        return [("y=x*mask/(1-p)", y, x * m / np.float32(q)),
                ("dx=dy*mask/(1-p)", native.dropout_backward(dy, mask, p_drop),
                 dy * m / np.float32(q)),
                (f"kept {keep:.4f} ~ {q:g}", np.array([float(near)]), np.array([1.0]))]

    cases.append(case("dropout", act.name, str(act.shape(batch)), 1,
                      shapes.DROPOUT_BYTES_PER_ELEM * act.numel(batch), "GB/s",
                      drop_tfe, drop_torch, drop_check))
    return cases
