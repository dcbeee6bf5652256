"""conv2d forward, and forward + backward, per ResNet18 (and DeepID) conv shape.

Batch 128 (training) and batch 1 (latency). Forward+backward is what one training step
costs the layer: y = conv(x, w); then dx (unless the layer's input is the image), dw, db
accumulated into persistent buffers, as the autograd layer does. extra_info holds GFLOP/s
(2 x MACs, see shapes.py) and the share of the measured FMA peak.
"""

import numpy as np
import pytest

import shapes

CONVS = [c for c in shapes.RESNET18_CONVS] + list(shapes.DEEPID_CONVS)


def _ids(c):
    return c.name


@pytest.fixture(params=shapes.BATCHES, ids=lambda n: f"b{n}")
def batch(request):
    return request.param


def _inputs(conv, n, randn):
    x = randn(*conv.x_shape(n))
    w = randn(*conv.w_shape(), scale=(conv.cin * conv.k * conv.k) ** -0.5)
    b = randn(conv.cout) if conv.bias else None
    dy = randn(*conv.y_shape(n))
    return x, w, b, dy


@pytest.mark.parametrize("conv", CONVS, ids=_ids)
def test_conv2d_forward(benchmark, native, fma_peak, throughput, randn, conv, batch):
    x, w, b, _ = _inputs(conv, batch, randn)
    benchmark.group = f"conv2d_forward-b{batch}"
    y = benchmark(native.conv2d_forward, x, w, b, conv.stride, conv.pad)
    assert np.asarray(y).shape == conv.y_shape(batch)
    throughput(benchmark, flops=conv.flops_fwd(batch), peak=fma_peak, shape=conv.label,
               count_in_network=conv.count)


@pytest.mark.parametrize("conv", CONVS, ids=_ids)
def test_conv2d_forward_backward(benchmark, native, fma_peak, throughput, randn, conv, batch):
    x, w, b, dy = _inputs(conv, batch, randn)
    dw = np.zeros_like(w)
    db = np.zeros(conv.cout, np.float32)

    def step():
        native.conv2d_forward(x, w, b, conv.stride, conv.pad)
        return native.conv2d_backward(dy, x, w, conv.stride, conv.pad, dw=dw, db=db,
                                      compute_dx=conv.needs_dx)

    benchmark.group = f"conv2d_fwd_bwd-b{batch}"
    dx, _, _ = benchmark(step)
    assert (dx is not None) == conv.needs_dx
    throughput(benchmark, flops=conv.flops_fwd_bwd(batch), peak=fma_peak, shape=conv.label,
               count_in_network=conv.count, computes_dx=conv.needs_dx)
