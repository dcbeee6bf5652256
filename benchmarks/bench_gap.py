"""Global average pooling of ResNet18's last stage [N, 64, 12, 12] -> [N, 64]."""

import shapes

N = shapes.BATCHES[0]
ACT = shapes.GAP_ACT


def test_gap_forward(benchmark, native, throughput, randn):
    x = randn(*ACT.shape(N))
    benchmark.group = "gap"
    benchmark(native.gap_forward, x)
    throughput(benchmark, nbytes=shapes.F32 * ACT.numel(N), shape=ACT.shape(N))


def test_gap_forward_backward(benchmark, native, throughput, randn):
    x = randn(*ACT.shape(N))
    dy = randn(N, ACT.c)

    def step():
        native.gap_forward(x)
        return native.gap_backward(dy, ACT.h, ACT.w)

    benchmark.group = "gap"
    benchmark(step)
    throughput(benchmark, nbytes=shapes.BYTES_PER_ELEM["gap"] * ACT.numel(N), shape=ACT.shape(N))


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 70  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("gap", "global average pool forward+backward"),
]


def torch_cases(setting):
    """Forward + backward against F.adaptive_avg_pool2d."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    cases = []
    gap = shapes.GAP_ACT
    x, dy = randn(*gap.shape(batch)), randn(batch, gap.c)
    tx, tdy = leaf(x), torch.from_numpy(dy)

    def gap_tfe(x=x, dy=dy, gap=gap):
        native.gap_forward(x)
        native.gap_backward(dy, gap.h, gap.w)

    def gap_torch(tx=tx, tdy=tdy):
        grad(F.adaptive_avg_pool2d(tx, 1).flatten(1), tx, tdy)

    def gap_check(x=x, dy=dy, tx=tx, tdy=tdy, gap=gap):
        ty = F.adaptive_avg_pool2d(tx, 1).flatten(1)
        return [("y", native.gap_forward(x), ty),
                ("dx", native.gap_backward(dy, gap.h, gap.w), grad(ty, tx, tdy)[0])]

    cases.append(case("gap", gap.name, str(gap.shape(batch)), gap.count,
                      shapes.BYTES_PER_ELEM["gap"] * gap.numel(batch), "GB/s",
                      gap_tfe, gap_torch, gap_check))
    return cases
