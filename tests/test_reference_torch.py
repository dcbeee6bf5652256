"""The reference (tfe.reference) against PyTorch as an outside oracle: forwards, every
gradient (torch.autograd), batch-norm running statistics and SGD steps.

float64 is compared tightly (the formulas are the same up to summation order); a float32
pass checks that the reference also works in the dtype the engine uses.
"""
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is an optional test-only oracle: pip install torch==2.13.0")
F = torch.nn.functional

import tfe.reference as ref  # noqa: E402

TOL = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}


def rng(seed):
    return np.random.default_rng(seed)


def T(a, grad=False):
    t = torch.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(True) if grad else t


def close(mine, theirs, dtype, name=""):
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().numpy()
    assert np.shape(mine) == np.shape(theirs), name
    np.testing.assert_allclose(mine, theirs, err_msg=name, **TOL[dtype])


DTYPES = [np.float64, np.float32]


# ---- conv2d ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,C,H,W,K,k,stride,pad,bias", [
    (1, 3, 7, 9, 5, 1, 1, 0, True),
    (3, 5, 7, 9, 3, 2, 2, 1, True),
    (3, 3, 7, 9, 5, 3, 1, 1, True),
    (2, 5, 7, 9, 4, 3, 2, 0, False),
    (1, 3, 7, 9, 3, 4, 1, 1, True),
    (3, 3, 9, 7, 5, 4, 2, 0, True),
    (2, 1, 48, 48, 8, 3, 1, 1, True),
])
def test_conv2d(dtype, N, C, H, W, K, k, stride, pad, bias):
    r = rng(N + C + H + K + k + stride + pad)
    x = r.standard_normal((N, C, H, W)).astype(dtype)
    w = (r.standard_normal((K, C, k, k)) / k).astype(dtype)
    b = r.standard_normal(K).astype(dtype) if bias else None
    tx, tw = T(x, True), T(w, True)
    tb = T(b, True) if bias else None
    ty = F.conv2d(tx, tw, tb, stride=stride, padding=pad)
    y = ref.conv2d_forward(x, w, b, stride, pad)
    assert y.dtype == dtype
    close(y, ty, dtype, "y")
    dy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(T(dy))
    dx, dw, db = ref.conv2d_backward(dy, x, w, stride, pad)
    close(dx, tx.grad, dtype, "dx")
    close(dw, tw.grad, dtype, "dw")
    close(db, T(dy).sum((0, 2, 3)) if not bias else tb.grad, dtype, "db")


# ---- batch norm -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (2, 4), (3, 5, 7, 9), (1, 3, 7, 9)])
def test_batchnorm_train(dtype, shape):
    r = rng(sum(shape))
    C = shape[1]
    x = (r.standard_normal(shape) * 2 + 1).astype(dtype)
    g, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    eps, mom = 1e-5, 0.1
    trm, trv = T(rm), T(rv)
    tx, tg, tb = T(x, True), T(g, True), T(b, True)
    ty, tmean, tinvstd = torch.ops.aten.native_batch_norm(tx, tg, tb, trm, trv, True, mom, eps)
    y, mean, invstd = ref.batchnorm_forward_train(x, g, b, rm, rv, eps, mom)
    close(y, ty, dtype, "y")
    close(mean, tmean, dtype, "save_mean")
    close(invstd, tinvstd, dtype, "save_invstd")
    close(rm, trm, dtype, "running_mean")
    close(rv, trv, dtype, "running_var")
    dy = r.standard_normal(shape).astype(dtype)
    ty.backward(T(dy))
    dx, dg, db = ref.batchnorm_backward(dy, x, g, mean, invstd)
    close(dx, tx.grad, dtype, "dx")
    close(dg, tg.grad, dtype, "dgamma")
    close(db, tb.grad, dtype, "dbeta")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (3, 5, 7, 9)])
def test_batchnorm_eval(dtype, shape):
    r = rng(sum(shape) + 1)
    C = shape[1]
    x = r.standard_normal(shape).astype(dtype)
    g, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    ty = F.batch_norm(T(x), T(rm), T(rv), T(g), T(b), training=False, eps=1e-5)
    close(ref.batchnorm_forward_eval(x, g, b, rm, rv, 1e-5), ty, dtype, "y")


def test_batchnorm_running_stats_over_steps_like_module():
    """Three training steps of nn.BatchNorm2d with non-default momentum and eps."""
    r = rng(3)
    bn = torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.3).double()
    rm, rv = np.zeros(4), np.ones(4)
    for _ in range(3):
        x = r.standard_normal((3, 4, 5, 7)) * 2 + 1
        ty = bn(T(x))
        y, _, _ = ref.batchnorm_forward_train(x, bn.weight.detach().numpy(),
                                              bn.bias.detach().numpy(), rm, rv, 1e-3, 0.3)
        close(y, ty, np.float64, "y")
    close(rm, bn.running_mean, np.float64, "running_mean")
    close(rv, bn.running_var, np.float64, "running_var")


# ---- relu, concat ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_and_concat(dtype):
    r = rng(4)
    x = r.standard_normal((3, 5, 7, 9)).astype(dtype)
    tx = T(x, True)
    ty = F.relu(tx)
    y = ref.relu_forward(x)
    close(y, ty, dtype, "relu y")
    dy = r.standard_normal(x.shape).astype(dtype)
    ty.backward(T(dy))
    close(ref.relu_backward(dy, y), tx.grad, dtype, "relu dx")
    xs = [r.standard_normal((3, c, 7, 9)).astype(dtype) for c in (2, 5, 1)]
    txs = [T(a, True) for a in xs]
    ty = torch.cat(txs, 1)
    close(ref.concat_forward(xs), ty, dtype, "concat y")
    dy = r.standard_normal(ty.shape).astype(dtype)
    ty.backward(T(dy))
    for d, t in zip(ref.concat_backward(dy, [2, 5, 1]), txs):
        close(d, t.grad, dtype, "concat dx")


# ---- pooling --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,stride,pad", [(2, 1, 0), (2, 2, 0), (2, 2, 1), (3, 1, 1), (3, 2, 0),
                                          (3, 2, 1), (3, 3, 1)])
def test_maxpool(dtype, k, stride, pad):
    r = rng(10 * k + stride + pad)
    shape = (3, 5, 7, 9)
    n = int(np.prod(shape))
    x = ((r.permutation(n) - n / 2) / n).reshape(shape).astype(dtype)   # distinct values
    tx = T(x, True)
    ty, tidx = F.max_pool2d(tx, k, stride, pad, return_indices=True)
    y, argmax = ref.maxpool2d_forward(x, k, stride, pad)
    close(y, ty, dtype, "y")
    np.testing.assert_array_equal(argmax, tidx.numpy())
    dy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(T(dy))
    close(ref.maxpool2d_backward(dy, argmax, 7, 9), tx.grad, dtype, "dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3, 7, 9), (3, 5, 7, 9), (2, 4, 1, 1)])
def test_gap(dtype, shape):
    r = rng(sum(shape))
    x = r.standard_normal(shape).astype(dtype)
    tx = T(x, True)
    ty = F.adaptive_avg_pool2d(tx, 1)
    y = ref.gap_forward(x)
    close(y, ty.reshape(shape[:2]), dtype, "y")
    dy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(T(dy).reshape(ty.shape))
    close(ref.gap_backward(dy, *shape[2:]), tx.grad, dtype, "dx")


# ---- linear ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,I,O,bias", [(1, 5, 3, True), (3, 7, 4, True), (4, 224, 7, False)])
def test_linear(dtype, N, I, O, bias):
    r = rng(N + I + O)
    x, w = r.standard_normal((N, I)).astype(dtype), r.standard_normal((O, I)).astype(dtype)
    b = r.standard_normal(O).astype(dtype) if bias else None
    tx, tw = T(x, True), T(w, True)
    tb = T(b, True) if bias else None
    ty = F.linear(tx, tw, tb)
    close(ref.linear_forward(x, w, b), ty, dtype, "y")
    dy = r.standard_normal((N, O)).astype(dtype)
    ty.backward(T(dy))
    dx, dw, db = ref.linear_backward(dy, x, w)
    close(dx, tx.grad, dtype, "dx")
    close(dw, tw.grad, dtype, "dw")
    if bias:
        close(db, tb.grad, dtype, "db")


# ---- cross-entropy --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,K,dloss", [(1, 5, 1.0), (3, 7, 1.0), (8, 7, 0.3)])
def test_cross_entropy_hard(dtype, N, K, dloss):
    r = rng(N * K)
    logits = (r.standard_normal((N, K)) * 4).astype(dtype)
    labels = r.integers(0, K, N).astype(np.int64)
    tl = T(logits, True)
    tloss = F.cross_entropy(tl, T(labels))
    loss, prob = ref.cross_entropy_forward(logits, labels)
    assert loss.shape == () and loss.dtype == dtype
    close(loss, tloss, dtype, "loss")
    close(prob, torch.softmax(tl, 1), dtype, "prob")
    (tloss * dloss).backward()
    close(ref.cross_entropy_backward(prob, labels, dloss), tl.grad, dtype, "dlogits")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,K,dloss", [(1, 5, 1.0), (3, 7, 1.0), (8, 7, -2.0)])
def test_cross_entropy_soft(dtype, N, K, dloss):
    r = rng(N * K + 1)
    logits = (r.standard_normal((N, K)) * 4).astype(dtype)
    target = r.uniform(0, 1, (N, K))
    target = (target / target.sum(1, keepdims=True)).astype(dtype)
    tl = T(logits, True)
    tloss = F.cross_entropy(tl, T(target))        # probability targets
    loss, prob = ref.cross_entropy_soft_forward(logits, target)
    close(loss, tloss, dtype, "loss")
    close(prob, torch.softmax(tl, 1), dtype, "prob")
    (tloss * dloss).backward()
    close(ref.cross_entropy_soft_backward(prob, target, dloss), tl.grad, dtype, "dlogits")


# ---- SGD ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,wd,nesterov", [(0.0, 0.0, False), (0.0, 1e-2, False),
                                                  (0.9, 0.0, False), (0.9, 5e-4, False),
                                                  (0.9, 0.0, True), (0.9, 5e-4, True)])
def test_sgd(dtype, momentum, wd, nesterov):
    r = rng(5)
    shapes = [(4, 3, 3, 3), (4,), (7, 5)]
    params = [r.standard_normal(s).astype(dtype) for s in shapes]
    tparams = [T(p, True) for p in params]
    opt = torch.optim.SGD(tparams, lr=0.05, momentum=momentum, weight_decay=wd,
                          nesterov=nesterov)
    bufs = [np.zeros(s, dtype) for s in shapes]
    for _ in range(3):
        grads = [r.standard_normal(s).astype(dtype) for s in shapes]
        for t, g in zip(tparams, grads):
            t.grad = T(g)
        opt.step()
        ref.sgd_step(params, grads, bufs, 0.05, momentum, wd, nesterov)
    for p, b, t in zip(params, bufs, tparams):
        close(p, t, dtype, "param")
        if momentum != 0:
            close(b, opt.state[t]["momentum_buffer"], dtype, "momentum_buffer")


# ---- residual epilogue ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (1, 4, 6, 6)])
def test_residual(dtype, shape):
    r = rng(sum(shape) + 7)
    C = shape[1]
    x, s = r.standard_normal(shape).astype(dtype), r.standard_normal(shape).astype(dtype)
    g, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    trm, trv = T(rm), T(rv)
    tx, ts, tg, tb = T(x, True), T(s, True), T(g, True), T(b, True)
    ty = F.relu(F.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=0.1, eps=1e-5) + ts)
    y, mean, invstd = ref.residual_forward_train(x, s, g, b, rm, rv, 1e-5, 0.1)
    close(y, ty, dtype, "y")
    close(rm, trm, dtype, "running_mean")
    close(rv, trv, dtype, "running_var")
    dy = r.standard_normal(shape).astype(dtype)
    ty.backward(T(dy))
    dx, ds, dg, db = ref.residual_backward(dy, y, x, g, mean, invstd)
    close(dx, tx.grad, dtype, "dx")
    close(ds, ts.grad, dtype, "dshortcut")
    close(dg, tg.grad, dtype, "dgamma")
    close(db, tb.grad, dtype, "dbeta")
    te = F.relu(F.batch_norm(T(x), T(rm0), T(rv0), T(g), T(b), training=False, eps=1e-5) + T(s))
    close(ref.residual_forward_eval(x, s, g, b, rm0, rv0, 1e-5), te, dtype, "y eval")


# ---- TFE head -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,Di,De,O", [(3, 4, 5, 3), (2, 3, 2, 4), (16, 160, 64, 7)])
def test_tfe_head(dtype, N, Di, De, O):
    r = rng(N + Di + De + O)
    D = Di + De
    zi = (r.standard_normal((N, Di)) * 3).astype(dtype)
    ze = (r.uniform(0, 2, (N, De))).astype(dtype)          # post-ReLU/GAP-like features
    g, b = r.standard_normal(D).astype(dtype), r.standard_normal(D).astype(dtype)
    w, bias = (r.standard_normal((O, D)) / 8).astype(dtype), r.standard_normal(O).astype(dtype)
    rm, rv = r.standard_normal(D).astype(dtype), r.uniform(0.5, 2, D).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    trm, trv = T(rm), T(rv)
    tzi, tze, tg, tb, tw, tbias = (T(a, True) for a in (zi, ze, g, b, w, bias))
    tz = F.batch_norm(torch.cat([tzi, tze], 1), trm, trv, tg, tb, training=True, momentum=0.1,
                      eps=1e-5)
    tlogits = F.linear(tz, tw, tbias)
    logits, z_hat, mean, invstd = ref.tfe_head_forward_train(zi, ze, g, b, rm, rv, w, bias,
                                                             1e-5, 0.1)
    close(logits, tlogits, dtype, "logits")
    close(z_hat, tz, dtype, "z_hat")
    close(rm, trm, dtype, "running_mean")
    close(rv, trv, dtype, "running_var")
    dl = r.standard_normal((N, O)).astype(dtype)
    tlogits.backward(T(dl))
    grads = ref.tfe_head_backward(dl, zi, ze, z_hat, g, mean, invstd, w)
    for mine, t, name in zip(grads, (tzi, tze, tg, tb, tw, tbias),
                             ("dzi", "dze", "dgamma", "dbeta", "dw", "db")):
        close(mine, t.grad, dtype, name)
    tz_e = F.batch_norm(torch.cat([T(zi), T(ze)], 1), T(rm0), T(rv0), T(g), T(b),
                        training=False, eps=1e-5)
    logits_e, z_hat_e = ref.tfe_head_forward_eval(zi, ze, g, b, rm0, rv0, w, bias, 1e-5)
    close(z_hat_e, tz_e, dtype, "z_hat eval")
    close(logits_e, F.linear(tz_e, T(w), T(bias)), dtype, "logits eval")
