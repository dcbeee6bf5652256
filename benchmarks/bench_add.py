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


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 50  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("add", "add forward"),
]


def torch_cases(setting):
    """The forward per activation against torch.add."""
    native, torch, batch, randn = setting.native, setting.torch, setting.batch, setting.randn
    case = setting.case
    cases = []
    for act in shapes.ADD_ACTS:
        a, b = randn(*act.shape(batch)), randn(*act.shape(batch))
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        cases.append(case("add", act.name, str(act.shape(batch)), act.count,
                          shapes.BYTES_PER_ELEM["add"] * act.numel(batch), "GB/s",
                          lambda a=a, b=b: native.add_forward(a, b),
                          lambda ta=ta, tb=tb: torch.add(ta, tb),
                          lambda a=a, b=b, ta=ta, tb=tb: [("y", native.add_forward(a, b),
                                                           ta + tb)]))
    return cases
