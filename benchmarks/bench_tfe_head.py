"""The fused TFE head: BN1d(zi ++ ze) -> linear 224 -> 8, batch 128 (train) and 1 (eval)."""

import numpy as np
import pytest

import shapes

H = shapes.TFE_HEAD


def _state(randn, n):
    return dict(zi=randn(n, H.di), ze=randn(n, H.de), gamma=1 + 0.1 * randn(H.d),
                beta=0.1 * randn(H.d), running_mean=np.zeros(H.d, np.float32),
                running_var=np.ones(H.d, np.float32), w=randn(H.o, H.d, scale=H.d ** -0.5),
                b=randn(H.o))


def test_tfe_head_forward_backward(benchmark, native, fma_peak, throughput, randn):
    n = shapes.BATCHES[0]
    s = _state(randn, n)
    dlogits = randn(n, H.o)
    acc = dict(dgamma=np.zeros(H.d, np.float32), dbeta=np.zeros(H.d, np.float32),
               dw=np.zeros((H.o, H.d), np.float32), db=np.zeros(H.o, np.float32))

    def step():
        _, z_hat, mean, invstd = native.tfe_head_forward_train(**s, eps=shapes.EPS,
                                                               momentum=shapes.MOMENTUM)
        return native.tfe_head_backward(dlogits, s["zi"], s["ze"], z_hat, s["gamma"], mean,
                                        invstd, s["w"], **acc)

    benchmark.group = "tfe_head"
    benchmark(step)
    throughput(benchmark, flops=H.flops_fwd_bwd(n), peak=fma_peak)


@pytest.mark.parametrize("n", shapes.BATCHES, ids=lambda n: f"b{n}")
def test_tfe_head_forward_eval(benchmark, native, fma_peak, throughput, randn, n):
    s = _state(randn, n)
    benchmark.group = "tfe_head"
    benchmark(native.tfe_head_forward_eval, **s, eps=shapes.EPS)
    throughput(benchmark, flops=2 * n * H.d * H.o, peak=fma_peak)
