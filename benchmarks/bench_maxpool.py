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


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 60  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("maxpool", "max pool 2x2 forward+backward (DeepID)"),
]


def torch_cases(setting):
    """DeepID's pools, forward + backward, against F.max_pool2d."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    cases = []
    for p in shapes.DEEPID_POOLS:
        x, dy = randn(batch, p.c, p.h, p.w), randn(batch, p.c, p.ho, p.wo)
        tx, tdy = leaf(x), torch.from_numpy(dy)

        def tfe_step(x=x, dy=dy, p=p):
            _, am = native.maxpool2d_forward(x, p.k, p.stride, p.pad)
            native.maxpool2d_backward(dy, am, p.h, p.w)

        def torch_step(tx=tx, tdy=tdy, p=p):
            grad(F.max_pool2d(tx, p.k, p.stride, p.pad), tx, tdy)

        def check(x=x, dy=dy, tx=tx, tdy=tdy, p=p):
            y, am = native.maxpool2d_forward(x, p.k, p.stride, p.pad)
            ty = F.max_pool2d(tx, p.k, p.stride, p.pad)
            return [("y", y, ty), ("dx", native.maxpool2d_backward(dy, am, p.h, p.w),
                                   grad(ty, tx, tdy)[0])]

        cases.append(case("maxpool", p.name, f"{p.c}x{p.h}x{p.w} k{p.k}s{p.stride}", p.count,
                          p.bytes_fwd_bwd(batch), "GB/s", tfe_step, torch_step, check))
    return cases
