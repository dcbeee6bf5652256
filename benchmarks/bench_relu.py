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


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 40  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("relu", "relu forward+backward"),
]


def torch_cases(setting):
    """Forward + backward per activation."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    cases = []
    for act in shapes.RELU_ACTS:
        x, dy = randn(*act.shape(batch)), randn(*act.shape(batch))
        tx, tdy = leaf(x), torch.from_numpy(dy)

        def tfe_step(x=x, dy=dy):
            native.relu_backward(dy, native.relu_forward(x))

        def torch_step(tx=tx, tdy=tdy):
            grad(F.relu(tx), tx, tdy)

        def check(x=x, dy=dy, tx=tx, tdy=tdy):
            y = native.relu_forward(x)
            ty = F.relu(tx)
            return [("y", y, ty), ("dx", native.relu_backward(dy, y), grad(ty, tx, tdy)[0])]

        cases.append(case("relu", act.name, str(act.shape(batch)), act.count,
                          shapes.BYTES_PER_ELEM["relu"] * act.numel(batch), "GB/s",
                          tfe_step, torch_step, check))
    return cases
