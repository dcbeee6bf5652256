"""Batch norm (2d on the ResNet18 activations, 1d on the TFE features), batch 128.

Training forward, training forward+backward (dgamma/dbeta accumulated), eval forward.
GB/s counts the compulsory traffic (shapes.BYTES_PER_ELEM): a kernel that reads x twice in
the forward (statistics, then normalisation) will show less than the bandwidth it uses.
"""

import numpy as np
import pytest

import shapes

N = shapes.BATCHES[0]
ACTS = shapes.BN_ACTS + [shapes.Act("bn1d_224", shapes.DEEPID_FEATURE + shapes.EMOTION_FEATURE)]
F32 = shapes.F32


def _state(randn, act):
    c = act.c
    return (randn(*act.shape(N)), 1 + 0.1 * randn(c), 0.1 * randn(c), np.zeros(c, np.float32),
            np.ones(c, np.float32))


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
def test_batchnorm_forward_train(benchmark, native, throughput, randn, act):
    x, g, b, rm, rv = _state(randn, act)
    benchmark.group = "batchnorm"
    benchmark(native.batchnorm_forward_train, x, g, b, rm, rv, shapes.EPS, shapes.MOMENTUM)
    throughput(benchmark, nbytes=2 * F32 * act.numel(N), shape=act.shape(N))


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
def test_batchnorm_forward_backward(benchmark, native, throughput, randn, act):
    x, g, b, rm, rv = _state(randn, act)
    dy = randn(*act.shape(N))
    dg, db = np.zeros_like(g), np.zeros_like(b)

    def step():
        _, mean, invstd = native.batchnorm_forward_train(x, g, b, rm, rv, shapes.EPS,
                                                         shapes.MOMENTUM)
        return native.batchnorm_backward(dy, x, g, mean, invstd, dgamma=dg, dbeta=db)

    benchmark.group = "batchnorm"
    benchmark(step)
    throughput(benchmark, nbytes=shapes.BYTES_PER_ELEM["batchnorm"] * act.numel(N),
               shape=act.shape(N), count_in_network=act.count)


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
def test_batchnorm_forward_eval(benchmark, native, throughput, randn, act):
    x, g, b, rm, rv = _state(randn, act)
    benchmark.group = "batchnorm"
    benchmark(native.batchnorm_forward_eval, x, g, b, rm, rv, shapes.EPS)
    throughput(benchmark, nbytes=2 * F32 * act.numel(N), shape=act.shape(N))


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 20  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("batchnorm", "batch norm train forward+backward"),
]


def torch_cases(setting):
    """Training forward + backward per activation (and BN1d on the TFE features) against
    F.batch_norm + torch.autograd.grad."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    bn_state, eps, mom = setting.bn_state, shapes.EPS, shapes.MOMENTUM
    cases = []
    for act in shapes.BN_ACTS + [shapes.Act("bn1d_224", shapes.TFE_HEAD.d, count=0)]:
        if act.h * act.w == 1 and batch < 2:
            continue  # training-mode BN1d needs a batch > 1
        x, dy = randn(*act.shape(batch)), randn(*act.shape(batch))
        g, b, rm, rv = bn_state(act.c)
        dg, dbeta = np.zeros_like(g), np.zeros_like(b)
        tx, tg, tb = leaf(x), leaf(g.copy()), leaf(b.copy())
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        tdy = torch.from_numpy(dy)

        def tfe_step(x=x, dy=dy, g=g, b=b, rm=rm, rv=rv, dg=dg, dbeta=dbeta):
            _, m, s = native.batchnorm_forward_train(x, g, b, rm, rv, eps, mom)
            native.batchnorm_backward(dy, x, g, m, s, dgamma=dg, dbeta=dbeta)

        def torch_step(tx=tx, tg=tg, tb=tb, trm=trm, trv=trv, tdy=tdy):
            y = F.batch_norm(tx, trm, trv, tg, tb, True, mom, eps)
            grad(y, (tx, tg, tb), tdy)

        def check(x=x, dy=dy, g=g, b=b, tx=tx, tg=tg, tb=tb, tdy=tdy, c=act.c):
            rm_, rv_ = np.zeros(c, np.float32), np.ones(c, np.float32)
            y, m, s = native.batchnorm_forward_train(x, g, b, rm_, rv_, eps, mom)
            dx, dg_, db_ = native.batchnorm_backward(dy, x, g, m, s)
            trm_, trv_ = torch.zeros(c), torch.ones(c)
            ty = F.batch_norm(tx, trm_, trv_, tg, tb, True, mom, eps)
            tdx, tdg, tdb = grad(ty, (tx, tg, tb), tdy)
            return [("y", y, ty), ("running_var", rv_, trv_), ("dx", dx, tdx),
                    ("dgamma", dg_, tdg), ("dbeta", db_, tdb)]

        cases.append(case("batchnorm", act.name, str(act.shape(batch)), act.count,
                          shapes.BYTES_PER_ELEM["batchnorm"] * act.numel(batch), "GB/s",
                          tfe_step, torch_step, check))
    return cases
