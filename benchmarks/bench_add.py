"""Elementwise add (the residual sum when it is not fused) on the ResNet18 activations."""

import pytest

import shapes

N = shapes.BATCHES[0]


@pytest.mark.parametrize("act", shapes.ADD_ACTS, ids=lambda a: a.name)
def test_add_forward(benchmark, native, throughput, randn, act):
    a, b = randn(*act.shape(N)), randn(*act.shape(N))
    benchmark.group = "add"
    benchmark(native.add_forward, a, b)
    throughput(benchmark, nbytes=shapes.BYTES_PER_ELEM["add"] * act.numel(N), shape=act.shape(N))
