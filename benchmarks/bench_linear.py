"""Fully connected layers of the networks (shapes.LINEARS), batch 128 and 1."""

import numpy as np
import pytest

import shapes


@pytest.mark.parametrize("n", shapes.BATCHES, ids=lambda n: f"b{n}")
@pytest.mark.parametrize("lin", shapes.LINEARS, ids=lambda l: l.name)
def test_linear_forward(benchmark, native, fma_peak, throughput, randn, lin, n):
    x, w, b = randn(n, lin.fin), randn(lin.fout, lin.fin, scale=lin.fin ** -0.5), randn(lin.fout)
    benchmark.group = f"linear-b{n}"
    benchmark(native.linear_forward, x, w, b)
    throughput(benchmark, flops=lin.flops_fwd(n), peak=fma_peak)


@pytest.mark.parametrize("n", shapes.BATCHES, ids=lambda n: f"b{n}")
@pytest.mark.parametrize("lin", shapes.LINEARS, ids=lambda l: l.name)
def test_linear_forward_backward(benchmark, native, fma_peak, throughput, randn, lin, n):
    x, w, b = randn(n, lin.fin), randn(lin.fout, lin.fin, scale=lin.fin ** -0.5), randn(lin.fout)
    dy = randn(n, lin.fout)
    dw, db = np.zeros_like(w), np.zeros_like(b)

    def step():
        native.linear_forward(x, w, b)
        return native.linear_backward(dy, x, w, dw=dw, db=db, compute_dx=lin.needs_dx)

    benchmark.group = f"linear-b{n}"
    benchmark(step)
    throughput(benchmark, flops=lin.flops_fwd_bwd(n), peak=fma_peak)


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 80  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("linear", "linear forward+backward"),
]


def torch_cases(setting):
    """Every fully connected layer of the networks, forward + backward, against F.linear."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    cases = []
    for lin in shapes.LINEARS:
        x, dy = randn(batch, lin.fin), randn(batch, lin.fout)
        w, b = randn(lin.fout, lin.fin, scale=lin.fin ** -0.5), randn(lin.fout)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        tx, tw, tb, tdy = leaf(x), leaf(w), leaf(b), torch.from_numpy(dy)

        def tfe_step(x=x, w=w, b=b, dy=dy, dw=dw, db=db):
            native.linear_forward(x, w, b)
            native.linear_backward(dy, x, w, dw=dw, db=db)

        def torch_step(tx=tx, tw=tw, tb=tb, tdy=tdy):
            grad(F.linear(tx, tw, tb), (tx, tw, tb), tdy)

        def check(x=x, w=w, b=b, dy=dy, tx=tx, tw=tw, tb=tb, tdy=tdy):
            ty = F.linear(tx, tw, tb)
            tdx, tdw, tdb = grad(ty, (tx, tw, tb), tdy)
            dx, dw_, db_ = native.linear_backward(dy, x, w)
            return [("y", native.linear_forward(x, w, b), ty), ("dx", dx, tdx), ("dw", dw_, tdw),
                    ("db", db_, tdb)]

        cases.append(case("linear", lin.name, f"{lin.fin}->{lin.fout}", lin.count,
                          lin.flops_fwd_bwd(batch), "GFLOP/s", tfe_step, torch_step, check))
    return cases
