"""Dropout (p = 0.4, counter-based RNG) on DeepID's [N, 160] feature, batch 128."""

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
