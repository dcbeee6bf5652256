"""Concatenation along features: DeepID's FC input (960 + 720) and the TFE zi ++ ze (160 + 64)."""

import pytest

import shapes

N = shapes.BATCHES[0]


@pytest.mark.parametrize("cat", shapes.CONCATS, ids=lambda c: c.name)
def test_concat_forward_backward(benchmark, native, throughput, randn, cat):
    xs = [randn(N, c) for c in cat.sizes]
    dy = randn(N, sum(cat.sizes))
    sizes = list(cat.sizes)

    def step():
        native.concat_forward(xs)
        return native.concat_backward(dy, sizes)

    benchmark.group = "concat"
    benchmark(step)
    throughput(benchmark, nbytes=cat.bytes_fwd_bwd(N))
