"""Fused residual epilogue y = relu(batchnorm(x) + shortcut) on the ResNet18 activations."""

import numpy as np
import pytest

import shapes

N = shapes.BATCHES[0]


def _state(randn, act):
    c = act.c
    return (randn(*act.shape(N)), randn(*act.shape(N)), 1 + 0.1 * randn(c), 0.1 * randn(c),
            np.zeros(c, np.float32), np.ones(c, np.float32))


@pytest.mark.parametrize("act", shapes.RESIDUAL_ACTS, ids=lambda a: a.name)
def test_residual_forward_train(benchmark, native, throughput, randn, act):
    x, s, g, b, rm, rv = _state(randn, act)
    benchmark.group = "residual"
    benchmark(native.residual_forward_train, x, s, g, b, rm, rv, shapes.EPS, shapes.MOMENTUM)
    throughput(benchmark, nbytes=3 * shapes.F32 * act.numel(N), shape=act.shape(N))


@pytest.mark.parametrize("act", shapes.RESIDUAL_ACTS, ids=lambda a: a.name)
def test_residual_forward_backward(benchmark, native, throughput, randn, act):
    x, s, g, b, rm, rv = _state(randn, act)
    dy = randn(*act.shape(N))
    dg, db = np.zeros_like(g), np.zeros_like(b)

    def step():
        y, mean, invstd = native.residual_forward_train(x, s, g, b, rm, rv, shapes.EPS,
                                                        shapes.MOMENTUM)
        return native.residual_backward(dy, y, x, g, mean, invstd, dgamma=dg, dbeta=db)

    benchmark.group = "residual"
    benchmark(step)
    throughput(benchmark, nbytes=shapes.BYTES_PER_ELEM["residual"] * act.numel(N),
               shape=act.shape(N), count_in_network=act.count)


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 30  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("residual", "residual relu(bn(x)+s) fwd+bwd vs torch bn+add+relu"),
]


def keep_off_relu_kink(x, sc, gamma, beta, margin=1e-3):
    """Move shortcut values so that no pre-activation bn(x) + sc lies within `margin` of 0.

    Where it does, float32 rounding in tfe and torch may land on opposite sides of the ReLU
    kink and the gradient of that element differs by the whole dy: a tie, not an error.
    Among millions of random elements a few land within 1e-7 of 0, so without this the
    check would flag correct kernels now and then. In place; timing is unaffected.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=axes), x64.var(axis=axes)
    z = ((x64 - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + shapes.EPS)
         * gamma.reshape(shape) + beta.reshape(shape) + sc)
    near = np.abs(z) < margin
    sc[near] += np.where(z[near] >= 0, 2 * margin, -2 * margin).astype(np.float32)


def torch_cases(setting):
    """tfe's fused relu(bn(x) + shortcut), forward + backward, against torch's batch norm,
    add and ReLU."""
    native, torch, F, grad = setting.native, setting.torch, setting.F, setting.grad
    batch, randn, leaf, case = setting.batch, setting.randn, setting.leaf, setting.case
    bn_state, eps, mom = setting.bn_state, shapes.EPS, shapes.MOMENTUM
    cases = []
    for act in shapes.RESIDUAL_ACTS:
        x, sc, dy = (randn(*act.shape(batch)) for _ in range(3))
        g, b, rm, rv = bn_state(act.c)
        keep_off_relu_kink(x, sc, g, b)
        dg, dbeta = np.zeros_like(g), np.zeros_like(b)
        tx, ts, tg, tb = leaf(x), leaf(sc), leaf(g.copy()), leaf(b.copy())
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        tdy = torch.from_numpy(dy)

        def tfe_step(x=x, sc=sc, dy=dy, g=g, b=b, rm=rm, rv=rv, dg=dg, dbeta=dbeta):
            y, m, s = native.residual_forward_train(x, sc, g, b, rm, rv, eps, mom)
            native.residual_backward(dy, y, x, g, m, s, dgamma=dg, dbeta=dbeta)

        def torch_fwd(tx, ts, tg, tb, trm, trv):
            return F.relu(F.batch_norm(tx, trm, trv, tg, tb, True, mom, eps) + ts)

        def torch_step(tx=tx, ts=ts, tg=tg, tb=tb, trm=trm, trv=trv, tdy=tdy):
            grad(torch_fwd(tx, ts, tg, tb, trm, trv), (tx, ts, tg, tb), tdy)

        def check(x=x, sc=sc, dy=dy, g=g, b=b, tx=tx, ts=ts, tg=tg, tb=tb, tdy=tdy, c=act.c):
            rm_, rv_ = np.zeros(c, np.float32), np.ones(c, np.float32)
            y, m, s = native.residual_forward_train(x, sc, g, b, rm_, rv_, eps, mom)
            dx, ds, dg_, db_ = native.residual_backward(dy, y, x, g, m, s)
            ty = torch_fwd(tx, ts, tg, tb, torch.zeros(c), torch.ones(c))
            tdx, tds, tdg, tdb = grad(ty, (tx, ts, tg, tb), tdy)
            return [("y", y, ty), ("dx", dx, tdx), ("dshortcut", ds, tds), ("dgamma", dg_, tdg),
                    ("dbeta", db_, tdb)]

        cases.append(case("residual", act.name, str(act.shape(batch)), act.count,
                          shapes.BYTES_PER_ELEM["residual"] * act.numel(batch), "GB/s",
                          tfe_step, torch_step, check))
    return cases
