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


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 10  # where its sections come in compare_torch.py's output
TORCH_ONLY = "conv"  # the --only group (default: ops)
TORCH_SECTIONS = [  # (section, title) in output order
    ("conv", "conv2d forward+backward, ResNet18"),
    ("conv-deepid", "conv2d forward+backward, DeepID (own total)"),
]


def torch_cases(setting):
    """Per ResNet18 (and DeepID) conv shape, forward + backward as one training step pays
    it: tfe's forward and backward (dw/db accumulated, dx unless the layer's input is the
    image) against F.conv2d + torch.autograd.grad of the same tensors."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    cases = []

    def conv_case(section, c):
        x = randn(*c.x_shape(batch))
        w = randn(*c.w_shape(), scale=(c.cin * c.k * c.k) ** -0.5)
        b = randn(c.cout) if c.bias else None
        dy = randn(*c.y_shape(batch))
        dw, db = np.zeros_like(w), np.zeros(c.cout, np.float32)
        tx, tw = leaf(x, c.needs_dx), leaf(w)
        tb = leaf(b) if c.bias else None
        tdy = torch.from_numpy(dy)
        wrt = ([tx] if c.needs_dx else []) + [tw] + ([tb] if c.bias else [])

        def tfe_step():
            native.conv2d_forward(x, w, b, c.stride, c.pad)
            native.conv2d_backward(dy, x, w, c.stride, c.pad, dw=dw, db=db,
                                   compute_dx=c.needs_dx)

        def torch_step():
            y = F.conv2d(tx, tw, tb, c.stride, c.pad)
            grad(y, wrt, tdy)

        def check():
            y = native.conv2d_forward(x, w, b, c.stride, c.pad)
            dx_, dw_, db_ = native.conv2d_backward(dy, x, w, c.stride, c.pad,
                                                   compute_dx=c.needs_dx)
            ty = F.conv2d(tx, tw, tb, c.stride, c.pad)
            g = dict(zip(["dx"] * c.needs_dx + ["dw"] + ["db"] * c.bias, grad(ty, wrt, tdy)))
            out = [("y", y, ty), ("dw", dw_, g["dw"])]
            if c.needs_dx:
                out.append(("dx", dx_, g["dx"]))
            if c.bias:
                out.append(("db", db_, g["db"]))
            return out

        cases.append(case(section, c.name, c.label, c.count, c.flops_fwd_bwd(batch), "GFLOP/s",
                          tfe_step, torch_step, check))

    for c in shapes.RESNET18_CONVS:
        conv_case("conv", c)
    for c in shapes.DEEPID_CONVS:
        conv_case("conv-deepid", c)
    return cases
