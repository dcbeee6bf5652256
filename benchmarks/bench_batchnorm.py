"""Batch norm (2d on the ResNet18 activations, 1d on the TFE features), batch 128.

Training forward, training forward+backward (dgamma/dbeta accumulated), eval forward.
GB/s counts the compulsory traffic (shapes.BYTES_PER_ELEM): a kernel that reads x twice in
the forward (statistics, then normalisation) will show less than the bandwidth it uses.
"""

import numpy as np
import pytest

import shapes

N = shapes.BATCHES[0]
ACTS = shapes.BN_ACTS + [shapes.Act("bn1d_224", shapes.DEEPID_FEATURE + shapes.EMOTION_FEATURE)]
F32 = shapes.F32


def _state(randn, act):
    c = act.c
    return (randn(*act.shape(N)), 1 + 0.1 * randn(c), 0.1 * randn(c), np.zeros(c, np.float32),
            np.ones(c, np.float32))


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
def test_batchnorm_forward_train(benchmark, native, throughput, randn, act):
    x, g, b, rm, rv = _state(randn, act)
    benchmark.group = "batchnorm"
    benchmark(native.batchnorm_forward_train, x, g, b, rm, rv, shapes.EPS, shapes.MOMENTUM)
    throughput(benchmark, nbytes=2 * F32 * act.numel(N), shape=act.shape(N))


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
def test_batchnorm_forward_backward(benchmark, native, throughput, randn, act):
    x, g, b, rm, rv = _state(randn, act)
    dy = randn(*act.shape(N))
    dg, db = np.zeros_like(g), np.zeros_like(b)

    def step():
        _, mean, invstd = native.batchnorm_forward_train(x, g, b, rm, rv, shapes.EPS,
                                                         shapes.MOMENTUM)
        return native.batchnorm_backward(dy, x, g, mean, invstd, dgamma=dg, dbeta=db)

    benchmark.group = "batchnorm"
    benchmark(step)
    throughput(benchmark, nbytes=shapes.BYTES_PER_ELEM["batchnorm"] * act.numel(N),
               shape=act.shape(N), count_in_network=act.count)


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
def test_batchnorm_forward_eval(benchmark, native, throughput, randn, act):
    x, g, b, rm, rv = _state(randn, act)
    benchmark.group = "batchnorm"
    benchmark(native.batchnorm_forward_eval, x, g, b, rm, rv, shapes.EPS)
    throughput(benchmark, nbytes=2 * F32 * act.numel(N), shape=act.shape(N))
