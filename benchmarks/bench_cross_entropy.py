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
