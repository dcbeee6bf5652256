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
