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
