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


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 130  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("tfe_head", "TFE head fwd+bwd vs torch cat + BN1d + linear"),
]


def torch_cases(setting):
    """The fused head, forward + backward, against torch's cat + BN1d + linear."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    bn_state, eps, mom = setting.bn_state, shapes.EPS, shapes.MOMENTUM
    cases = []
    if batch >= 2:
        h = shapes.TFE_HEAD
        zi, ze, dl = randn(batch, h.di), randn(batch, h.de), randn(batch, h.o)
        g, b, rm, rv = bn_state(h.d)
        w, bias = randn(h.o, h.d, scale=h.d ** -0.5), randn(h.o)
        acc = dict(dgamma=np.zeros(h.d, np.float32), dbeta=np.zeros(h.d, np.float32),
                   dw=np.zeros((h.o, h.d), np.float32), db=np.zeros(h.o, np.float32))
        t = dict(zi=leaf(zi), ze=leaf(ze), g=leaf(g.copy()), b=leaf(b.copy()), w=leaf(w),
                 bias=leaf(bias))
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        tdl = torch.from_numpy(dl)
        wrt = (t["zi"], t["ze"], t["g"], t["b"], t["w"], t["bias"])

        def head_torch_fwd(trm, trv):
            z = F.batch_norm(torch.cat([t["zi"], t["ze"]], 1), trm, trv, t["g"], t["b"], True,
                             mom, eps)
            return F.linear(z, t["w"], t["bias"]), z

        def head_tfe():
            _, zh, m, s = native.tfe_head_forward_train(zi, ze, g, b, rm, rv, w, bias, eps, mom)
            native.tfe_head_backward(dl, zi, ze, zh, g, m, s, w, **acc)

        def head_torch():
            grad(head_torch_fwd(trm, trv)[0], wrt, tdl)

        def head_check():
            lg, zh, m, s = native.tfe_head_forward_train(
                zi, ze, g, b, np.zeros(h.d, np.float32), np.ones(h.d, np.float32), w, bias, eps,
                mom)
            got = native.tfe_head_backward(dl, zi, ze, zh, g, m, s, w)
            tl, tz = head_torch_fwd(torch.zeros(h.d), torch.ones(h.d))
            want = grad(tl, wrt, tdl)
            names = ["dzi", "dze", "dgamma", "dbeta", "dw", "db"]
            return [("logits", lg, tl), ("z_hat", zh, tz)] + list(zip(names, got, want))

        cases.append(case("tfe_head", h.name, f"{h.di}+{h.de}->{h.o}", 1, h.flops_fwd_bwd(batch),
                          "GFLOP/s", head_tfe, head_torch, head_check))
    return cases
