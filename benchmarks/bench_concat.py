"""Concatenation along features: DeepID's FC input (960 + 720) and the TFE zi ++ ze (160 + 64)."""

import pytest

import shapes

N = shapes.BATCHES[0]


@pytest.mark.parametrize("cat", shapes.CONCATS, ids=lambda c: c.name)
def test_concat_forward_backward(benchmark, native, throughput, randn, cat):
    xs = [randn(N, c) for c in cat.sizes]
    dy = randn(N, sum(cat.sizes))
    sizes = list(cat.sizes)

    def step():
        native.concat_forward(xs)
        return native.concat_backward(dy, sizes)

    benchmark.group = "concat"
    benchmark(step)
    throughput(benchmark, nbytes=cat.bytes_fwd_bwd(N))


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 100  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("concat", "concat forward+backward"),
]


def torch_cases(setting):
    """Forward + backward against torch.cat."""
    native, torch, grad, batch = setting.native, setting.torch, setting.grad, setting.batch
    randn, leaf, case = setting.randn, setting.leaf, setting.case
    cases = []
    for cat in shapes.CONCATS:
        xs = [randn(batch, c) for c in cat.sizes]
        dy = randn(batch, sum(cat.sizes))
        txs, tdy = [leaf(a) for a in xs], torch.from_numpy(dy)
        sizes = list(cat.sizes)

        def tfe_step(xs=xs, dy=dy, sizes=sizes):
            native.concat_forward(xs)
            native.concat_backward(dy, sizes)

        def torch_step(txs=txs, tdy=tdy):
            grad(torch.cat(txs, 1), txs, tdy)

        def check(xs=xs, dy=dy, sizes=sizes, txs=txs, tdy=tdy):
            ty = torch.cat(txs, 1)
            out = [("y", native.concat_forward(xs), ty)]
            for j, (a, ta) in enumerate(zip(native.concat_backward(dy, sizes), grad(ty, txs, tdy))):
                out.append((f"dx{j}", a, ta))
            return out

        cases.append(case("concat", cat.name, "+".join(map(str, cat.sizes)), 1,
                          cat.bytes_fwd_bwd(batch), "GB/s", tfe_step, torch_step, check))
    return cases
