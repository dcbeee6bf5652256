"""ReLU forward and backward on the ResNet18 activations, batch 128 (GB/s of compulsory traffic)."""

import pytest

import shapes

N = shapes.BATCHES[0]
F32 = shapes.F32


@pytest.mark.parametrize("act", shapes.RELU_ACTS, ids=lambda a: a.name)
def test_relu_forward(benchmark, native, throughput, randn, act):
    x = randn(*act.shape(N))
    benchmark.group = "relu"
    benchmark(native.relu_forward, x)
    throughput(benchmark, nbytes=2 * F32 * act.numel(N), shape=act.shape(N))


@pytest.mark.parametrize("act", shapes.RELU_ACTS, ids=lambda a: a.name)
def test_relu_backward(benchmark, native, throughput, randn, act):
    y = native.relu_forward(randn(*act.shape(N)))
    dy = randn(*act.shape(N))
    benchmark.group = "relu"
    benchmark(native.relu_backward, dy, y)
    throughput(benchmark, nbytes=3 * F32 * act.numel(N), shape=act.shape(N))
