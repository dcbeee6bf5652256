"""Fused residual epilogue y = relu(batchnorm(x) + shortcut) on the ResNet18 activations."""

import numpy as np
import pytest

import shapes

N = shapes.BATCHES[0]


def _state(randn, act):
    c = act.c
    return (randn(*act.shape(N)), randn(*act.shape(N)), 1 + 0.1 * randn(c), 0.1 * randn(c),
            np.zeros(c, np.float32), np.ones(c, np.float32))


@pytest.mark.parametrize("act", shapes.RESIDUAL_ACTS, ids=lambda a: a.name)
def test_residual_forward_train(benchmark, native, throughput, randn, act):
    x, s, g, b, rm, rv = _state(randn, act)
    benchmark.group = "residual"
    benchmark(native.residual_forward_train, x, s, g, b, rm, rv, shapes.EPS, shapes.MOMENTUM)
    throughput(benchmark, nbytes=3 * shapes.F32 * act.numel(N), shape=act.shape(N))


@pytest.mark.parametrize("act", shapes.RESIDUAL_ACTS, ids=lambda a: a.name)
def test_residual_forward_backward(benchmark, native, throughput, randn, act):
    x, s, g, b, rm, rv = _state(randn, act)
    dy = randn(*act.shape(N))
    dg, db = np.zeros_like(g), np.zeros_like(b)

    def step():
        y, mean, invstd = native.residual_forward_train(x, s, g, b, rm, rv, shapes.EPS,
                                                        shapes.MOMENTUM)
        return native.residual_backward(dy, y, x, g, mean, invstd, dgamma=dg, dbeta=db)

    benchmark.group = "residual"
    benchmark(step)
    throughput(benchmark, nbytes=shapes.BYTES_PER_ELEM["residual"] * act.numel(N),
               shape=act.shape(N), count_in_network=act.count)
