"""Max pooling 2x2 stride 2 of DeepID (45x45 -> 22x22, 20x20 -> 10x10, 8x8 -> 4x4), batch 128.

Backward includes the binding's bounds check of argmax (part of what a training step pays).
"""

import pytest

import shapes

N = shapes.BATCHES[0]


@pytest.mark.parametrize("pool", shapes.DEEPID_POOLS, ids=lambda p: p.name)
def test_maxpool2d_forward(benchmark, native, throughput, randn, pool):
    x = randn(N, pool.c, pool.h, pool.w)
    benchmark.group = "maxpool2d"
    benchmark(native.maxpool2d_forward, x, pool.k, pool.stride, pool.pad)
    plane_in, plane_out = pool.h * pool.w, pool.ho * pool.wo  # fwd: read x, write y + argmax
    throughput(benchmark, nbytes=shapes.F32 * N * pool.c * (plane_in + 2 * plane_out))


@pytest.mark.parametrize("pool", shapes.DEEPID_POOLS, ids=lambda p: p.name)
def test_maxpool2d_forward_backward(benchmark, native, throughput, randn, pool):
    x = randn(N, pool.c, pool.h, pool.w)
    dy = randn(N, pool.c, pool.ho, pool.wo)

    def step():
        _, argmax = native.maxpool2d_forward(x, pool.k, pool.stride, pool.pad)
        return native.maxpool2d_backward(dy, argmax, pool.h, pool.w)

    benchmark.group = "maxpool2d"
    benchmark(step)
    throughput(benchmark, nbytes=pool.bytes_fwd_bwd(N))
