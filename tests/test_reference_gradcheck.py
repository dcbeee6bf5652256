"""The reference (tfe.reference) proves itself: every backward against central finite
differences in float64, plus independent hand-written checks of the forwards that have no
gradient to check (argmax rule, running statistics, SGD, the dropout RNG).

Finite differences use the projection trick: L(inputs) = sum(forward(inputs) * R) for a
fixed random R, so the analytic gradient is backward(dy=R) and the numeric one is
(L(a + h e_i) - L(a - h e_i)) / 2h for every element i of every differentiable input a.
Non-smooth ops (ReLU, max pooling) get inputs that keep kinks and ties at least 1e-3 away.
"""
import numpy as np
import pytest

import tfe.reference as ref

H_STEP = 1e-6
RTOL = 1e-6


def rng(seed):
    return np.random.default_rng(seed)


def numeric_grads(loss, inputs, h=H_STEP):
    """Central differences of the scalar loss() w.r.t. every element of every input array
    (the arrays are perturbed in place and restored)."""
    grads = []
    for a in inputs:
        g = np.zeros_like(a)
        flat, gflat = a.reshape(-1), g.reshape(-1)      # views (inputs are contiguous)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + h
            lp = loss()
            flat[i] = orig - h
            lm = loss()
            flat[i] = orig
            gflat[i] = (lp - lm) / (2 * h)
        grads.append(g)
    return grads


def assert_grads_close(analytic, numeric, names):
    for a, n, name in zip(analytic, numeric, names):
        assert a.shape == n.shape, name
        scale = max(1.0, float(np.abs(n).max()))
        np.testing.assert_allclose(a, n, rtol=RTOL, atol=RTOL * scale, err_msg=name)


def proj(out, R):
    return float(np.sum(out * R))


# ---- conv2d ---------------------------------------------------------------------------------

CONV_CASES = [
    # N, C, H, W, K, k, stride, pad, bias
    (1, 3, 7, 9, 5, 1, 1, 0, True),
    (3, 5, 7, 9, 3, 1, 2, 1, False),
    (3, 5, 7, 9, 3, 2, 1, 1, True),
    (1, 3, 7, 9, 5, 2, 2, 0, True),
    (3, 3, 7, 9, 5, 3, 1, 1, True),
    (3, 5, 7, 9, 3, 3, 2, 0, True),
    (1, 3, 7, 9, 5, 3, 2, 1, False),
    (3, 3, 7, 9, 3, 4, 1, 0, True),
    (1, 5, 7, 9, 3, 4, 2, 1, True),
    (3, 3, 9, 7, 5, 3, 3, 1, True),
]


@pytest.mark.parametrize("N,C,H,W,K,k,stride,pad,bias", CONV_CASES)
def test_conv2d_gradcheck(N, C, H, W, K, k, stride, pad, bias):
    r = rng(hash((N, C, H, W, K, k, stride, pad)) % 2**32)
    x = r.standard_normal((N, C, H, W))
    w = r.standard_normal((K, C, k, k))
    b = r.standard_normal(K) if bias else None
    y = ref.conv2d_forward(x, w, b, stride, pad)
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    assert y.shape == (N, K, Ho, Wo)
    R = r.standard_normal(y.shape)
    dx, dw, db = ref.conv2d_backward(R, x, w, stride, pad)
    inputs = [x, w] + ([b] if bias else [])
    num = numeric_grads(lambda: proj(ref.conv2d_forward(x, w, b, stride, pad), R), inputs)
    assert_grads_close([dx, dw] + ([db] if bias else []), num, ["dx", "dw", "db"])
    if not bias:
        np.testing.assert_allclose(db, R.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_conv2d_forward_direct_sum():
    """The forward against the defining sum, written as plain loops."""
    r = rng(1)
    N, C, H, W, K, k, s, p = 2, 3, 7, 9, 4, 3, 2, 1
    x, w, b = r.standard_normal((N, C, H, W)), r.standard_normal((K, C, k, k)), r.standard_normal(K)
    y = ref.conv2d_forward(x, w, b, s, p)
    xpad = np.zeros((N, C, H + 2 * p, W + 2 * p))
    xpad[:, :, p:p + H, p:p + W] = x
    expect = np.zeros(y.shape)
    for n in range(N):
        for o in range(K):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    patch = xpad[n, :, i * s:i * s + k, j * s:j * s + k]
                    expect[n, o, i, j] = b[o] + np.sum(patch * w[o])
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)


# ---- batch norm -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 5), (2, 3), (7, 4), (3, 5, 7, 9), (1, 3, 7, 9)])
def test_batchnorm_train_gradcheck(shape):
    r = rng(len(shape) * 10 + shape[0])
    C = shape[1]
    x = r.standard_normal(shape) * 2 + 0.5
    gamma, beta = r.standard_normal(C), r.standard_normal(C)

    def fwd():
        return ref.batchnorm_forward_train(x, gamma, beta, np.zeros(C), np.ones(C), 1e-5, 0.1)

    y, mean, invstd = fwd()
    R = r.standard_normal(y.shape)
    dx, dgamma, dbeta = ref.batchnorm_backward(R, x, gamma, mean, invstd)
    num = numeric_grads(lambda: proj(fwd()[0], R), [x, gamma, beta])
    assert_grads_close([dx, dgamma, dbeta], num, ["dx", "dgamma", "dbeta"])


@pytest.mark.parametrize("shape", [(4, 3), (3, 5, 7, 9)])
def test_batchnorm_eval_gradcheck(shape):
    """Eval mode is affine in x: dx = dy * gamma / sqrt(running_var + eps)."""
    r = rng(5)
    C = shape[1]
    x = r.standard_normal(shape)
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    rm, rv = r.standard_normal(C), r.uniform(0.5, 2, C)
    R = r.standard_normal(shape)
    bshape = (1, C) + (1,) * (len(shape) - 2)
    (num,) = numeric_grads(
        lambda: proj(ref.batchnorm_forward_eval(x, gamma, beta, rm, rv, 1e-5), R), [x])
    assert_grads_close([R * (gamma / np.sqrt(rv + 1e-5)).reshape(bshape)], [num], ["dx"])


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 7, 9)])
def test_batchnorm_statistics_and_running_update(shape):
    r = rng(7)
    C = shape[1]
    x = r.standard_normal(shape) * 3 - 1
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    rm0, rv0 = r.standard_normal(C), r.uniform(0.5, 2, C)
    rm, rv = rm0.copy(), rv0.copy()
    eps, mom = 1e-3, 0.25
    y, mean, invstd = ref.batchnorm_forward_train(x, gamma, beta, rm, rv, eps, mom)
    per_channel = np.moveaxis(x, 1, 0).reshape(C, -1)          # [C, M]
    np.testing.assert_allclose(mean, per_channel.mean(1), rtol=1e-12)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(per_channel.var(1) + eps), rtol=1e-12)
    np.testing.assert_allclose(rm, (1 - mom) * rm0 + mom * per_channel.mean(1), rtol=1e-12)
    np.testing.assert_allclose(rv, (1 - mom) * rv0 + mom * per_channel.var(1, ddof=1),
                               rtol=1e-12)
    # The normalised output has zero mean and (biased) variance var / (var + eps) per channel.
    yc = np.moveaxis((y - beta.reshape((1, C) + (1,) * (len(shape) - 2))), 1, 0).reshape(C, -1)
    yc = yc / gamma[:, None]
    np.testing.assert_allclose(yc.mean(1), 0, atol=1e-12)
    v = per_channel.var(1)
    np.testing.assert_allclose(yc.var(1), v / (v + eps), rtol=1e-10)


def test_batchnorm_train_needs_two_values():
    with pytest.raises(ValueError, match=r"^\[batchnorm\]"):
        ref.batchnorm_forward_train(np.ones((1, 3)), np.ones(3), np.zeros(3), np.zeros(3),
                                    np.ones(3))


# ---- relu, add ------------------------------------------------------------------------------

def test_relu_gradcheck():
    r = rng(11)
    x = r.standard_normal((3, 5, 7, 9))
    x = np.where(np.abs(x) < 1e-3, 1e-2, x)               # keep away from the kink
    y = ref.relu_forward(x)
    R = r.standard_normal(x.shape)
    (num,) = numeric_grads(lambda: proj(ref.relu_forward(x), R), [x])
    assert_grads_close([ref.relu_backward(R, y)], [num], ["dx"])
    np.testing.assert_array_equal(ref.relu_backward(R, y), np.where(x > 0, R, 0))


def test_add_gradcheck():
    r = rng(12)
    a, b = r.standard_normal((3, 5, 7, 9)), r.standard_normal((3, 5, 7, 9))
    R = r.standard_normal(a.shape)
    num = numeric_grads(lambda: proj(ref.add_forward(a, b), R), [a, b])
    assert_grads_close([R, R], num, ["da", "db"])


# ---- max pooling ----------------------------------------------------------------------------

def distinct_values(r, shape, spacing=0.01):
    """Values whose pairwise gaps are >= spacing, so no max can change under +-h."""
    n = int(np.prod(shape))
    return ((r.permutation(n) - n / 2) * spacing).reshape(shape)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pad", [0, 1])
def test_maxpool_gradcheck(k, stride, pad):
    r = rng(100 * k + 10 * stride + pad)
    N, C, H, W = (3, 5, 7, 9) if stride == 2 else (1, 3, 7, 9)
    x = distinct_values(r, (N, C, H, W))
    y, argmax = ref.maxpool2d_forward(x, k, stride, pad)
    assert argmax.dtype == np.int32
    assert y.shape == (N, C, (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1)
    R = r.standard_normal(y.shape)
    dx = ref.maxpool2d_backward(R, argmax, H, W)
    (num,) = numeric_grads(lambda: proj(ref.maxpool2d_forward(x, k, stride, pad)[0], R), [x])
    assert_grads_close([dx], [num], ["dx"])


def maxpool_bruteforce(x, k, stride, pad):
    """Loops over every window in row-major order, keeping the first maximum."""
    N, C, H, W = x.shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    y = np.zeros((N, C, Ho, Wo), x.dtype)
    idx = np.zeros((N, C, Ho, Wo), np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    best, arg = None, None
                    for p in range(k):
                        for q in range(k):
                            h, w = i * stride - pad + p, j * stride - pad + q
                            if 0 <= h < H and 0 <= w < W and (best is None or x[n, c, h, w] > best):
                                best, arg = x[n, c, h, w], h * W + w
                    y[n, c, i, j], idx[n, c, i, j] = best, arg
    return y, idx


@pytest.mark.parametrize("k,stride,pad", [(2, 1, 0), (2, 2, 1), (3, 1, 1), (3, 2, 1), (3, 2, 0)])
def test_maxpool_argmax_rule_with_ties_and_padding(k, stride, pad):
    """Many ties (values from {-3, -2, -1}: all negative, so -inf padding must never win)."""
    r = rng(k + stride + pad)
    x = r.integers(-3, 0, size=(2, 3, 7, 9)).astype(np.float32)
    y, argmax = ref.maxpool2d_forward(x, k, stride, pad)
    y_bf, idx_bf = maxpool_bruteforce(x, k, stride, pad)
    np.testing.assert_array_equal(y, y_bf)
    np.testing.assert_array_equal(argmax, idx_bf)


def test_maxpool_argmax_hand_example():
    x = np.array([[[[1., 5., 5.],
                    [5., 2., 0.],
                    [-1., -1., 7.]]]], np.float32)
    y, argmax = ref.maxpool2d_forward(x, 2, 1, 0)
    np.testing.assert_array_equal(y[0, 0], [[5, 5], [5, 7]])
    np.testing.assert_array_equal(argmax[0, 0], [[1, 1], [3, 8]])  # first max in row-major order
    # All negative, so -inf padding must never be chosen; x' = [[-2, -6, -6], [-6, -3, -1],
    # [-2, -2, -8]]; windows: {(0,0)}, {(0,1), (0,2)}, {(1,0), (2,0)}, {(1,1), (1,2), (2,1), (2,2)}.
    y, argmax = ref.maxpool2d_forward(-np.abs(x) - 1, 2, 2, 1)
    np.testing.assert_array_equal(y[0, 0], [[-2, -6], [-2, -1]])
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [6, 5]])
    # Even an input of -inf never selects padding: the first real element of the window wins.
    y, argmax = ref.maxpool2d_forward(np.full((1, 1, 3, 3), -np.inf, np.float32), 2, 2, 1)
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [3, 4]])
    dx = ref.maxpool2d_backward(np.ones((1, 1, 2, 2), np.float32), np.array(
        [[[[1, 1], [3, 8]]]], np.int32), 3, 3)
    np.testing.assert_array_equal(dx[0, 0], [[0, 2, 0], [1, 0, 0], [0, 0, 1]])


# ---- gap, linear, concat --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 3, 7, 9), (3, 5, 7, 9), (2, 3, 1, 1)])
def test_gap_gradcheck(shape):
    r = rng(sum(shape))
    x = r.standard_normal(shape)
    y = ref.gap_forward(x)
    assert y.shape == shape[:2]
    R = r.standard_normal(y.shape)
    (num,) = numeric_grads(lambda: proj(ref.gap_forward(x), R), [x])
    assert_grads_close([ref.gap_backward(R, *shape[2:])], [num], ["dx"])


@pytest.mark.parametrize("N,I,O,bias", [(1, 5, 3, True), (3, 5, 3, True), (3, 7, 4, False)])
def test_linear_gradcheck(N, I, O, bias):
    r = rng(N * 100 + I * 10 + O)
    x, w = r.standard_normal((N, I)), r.standard_normal((O, I))
    b = r.standard_normal(O) if bias else None
    R = r.standard_normal((N, O))
    dx, dw, db = ref.linear_backward(R, x, w)
    inputs = [x, w] + ([b] if bias else [])
    num = numeric_grads(lambda: proj(ref.linear_forward(x, w, b), R), inputs)
    assert_grads_close([dx, dw] + ([db] if bias else []), num, ["dx", "dw", "db"])


@pytest.mark.parametrize("shapes", [[(3, 2, 7, 9), (3, 5, 7, 9), (3, 1, 7, 9)],
                                    [(1, 4), (1, 3)]])
def test_concat_gradcheck(shapes):
    r = rng(len(shapes[0]))
    xs = [r.standard_normal(s) for s in shapes]
    y = ref.concat_forward(xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=1))
    R = r.standard_normal(y.shape)
    dxs = ref.concat_backward(R, [s[1] for s in shapes])
    assert all(d.flags.c_contiguous for d in dxs)
    num = numeric_grads(lambda: proj(ref.concat_forward(xs), R), xs)
    assert_grads_close(dxs, num, ["dx%d" % j for j in range(len(xs))])


# ---- cross-entropy --------------------------------------------------------------------------

@pytest.mark.parametrize("N,K", [(1, 5), (3, 5), (4, 7)])
def test_cross_entropy_hard_gradcheck(N, K):
    r = rng(N * K)
    logits = r.standard_normal((N, K)) * 3
    labels = r.integers(0, K, N).astype(np.int64)
    R = 0.7                                            # dloss: the projection of a scalar
    loss, prob = ref.cross_entropy_forward(logits, labels)
    assert loss.shape == () and prob.shape == (N, K)
    lsm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -lsm[np.arange(N), labels].mean(), rtol=1e-12)
    np.testing.assert_allclose(prob.sum(1), 1, rtol=1e-12)
    d = ref.cross_entropy_backward(prob, labels, R)
    (num,) = numeric_grads(lambda: float(ref.cross_entropy_forward(logits, labels)[0]) * R,
                           [logits])
    assert_grads_close([d], [num], ["dlogits"])


@pytest.mark.parametrize("normalised", [True, False])
@pytest.mark.parametrize("N,K", [(1, 5), (3, 5)])
def test_cross_entropy_soft_gradcheck(N, K, normalised):
    r = rng(N * K + normalised)
    logits = r.standard_normal((N, K)) * 3
    target = r.uniform(0, 1, (N, K))
    if normalised:
        target /= target.sum(1, keepdims=True)
    R = -1.3
    loss, prob = ref.cross_entropy_soft_forward(logits, target)
    lsm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -(target * lsm).sum(1).mean(), rtol=1e-12)
    d = ref.cross_entropy_soft_backward(prob, target, R)
    (num,) = numeric_grads(lambda: float(ref.cross_entropy_soft_forward(logits, target)[0]) * R,
                           [logits])
    assert_grads_close([d], [num], ["dlogits"])


def test_cross_entropy_hard_equals_soft_onehot_and_is_stable():
    logits = np.array([[1000., 0., -1000.], [-5., 20., 3.]], np.float32)
    labels = np.array([0, 2], np.int64)
    loss, prob = ref.cross_entropy_forward(logits, labels)
    assert loss.dtype == np.float32 and np.isfinite(loss) and np.all(np.isfinite(prob))
    onehot = np.eye(3, dtype=np.float32)[labels]
    loss_s, prob_s = ref.cross_entropy_soft_forward(logits, onehot)
    np.testing.assert_allclose(loss, loss_s, rtol=1e-6)
    np.testing.assert_allclose(ref.cross_entropy_backward(prob, labels),
                               ref.cross_entropy_soft_backward(prob_s, onehot), atol=1e-7)
    with pytest.raises(ValueError, match=r"^\[cross_entropy\]"):
        ref.cross_entropy_forward(logits, np.array([0, 3], np.int64))


# ---- dropout --------------------------------------------------------------------------------

def test_dropout_gradcheck_fixed_mask():
    """With the seed fixed the mask is fixed, so dropout is linear in x."""
    r = rng(21)
    x = r.standard_normal((3, 5, 7, 9))
    p, seed = 0.4, 123
    y, mask = ref.dropout_forward(x, p, seed)
    R = r.standard_normal(x.shape)
    (num,) = numeric_grads(lambda: proj(ref.dropout_forward(x, p, seed)[0], R), [x])
    assert_grads_close([ref.dropout_backward(R, mask, p)], [num], ["dx"])


_M64 = (1 << 64) - 1


def py_mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def py_top24(seed, i):
    """The 24 random bits of element i, in pure Python integer arithmetic mod 2**64."""
    h = py_mix((py_mix(seed) + ((i + 1) * 0x9E3779B97F4A7C15 & _M64)) & _M64)
    return h >> 40


# Pinned values (h >> 40) from the pure-Python formula; u = value * 2**-24.
PINNED = [
    (0, 0, 14819496), (0, 1, 7239838), (0, 4, 1784201), (123, 0, 4575349),
    (2**64 - 1, 2**64 - 1, 4980696), (2**63 + 12345, 10**15, 4639518),
]


def test_dropout_uniform_matches_pure_python():
    pairs = [(0, i) for i in range(8)] + [(123, 0), (123, 999_999), (2**64 - 1, 2**64 - 1),
                                          (2**63 + 12345, 10**15), (42, 2**40 + 7)]
    for seed, i in pairs:
        u = ref.dropout_uniform(seed, np.array([i], dtype=np.uint64))
        assert u.dtype == np.float32
        assert u[0] == np.float32(py_top24(seed, i) * 2.0 ** -24), (seed, i)
    for seed, i, top in PINNED:
        assert py_top24(seed, i) == top
        assert ref.dropout_uniform(seed, np.array([i], np.uint64))[0] == top * 2.0 ** -24
    # Vectorised over an index array of any shape, element by element the same.
    idx = np.arange(12, dtype=np.uint64).reshape(3, 4)
    u = ref.dropout_uniform(7, idx)
    assert u.shape == (3, 4)
    assert all(u.flat[i] == py_top24(7, i) * 2.0 ** -24 for i in range(12))
    assert 0 <= u.min() and u.max() < 1


def test_dropout_keep_fraction_and_values():
    x = np.ones(100_000, np.float32)
    y, mask = ref.dropout_forward(x, 0.4, 2024)
    assert mask.dtype == np.uint8 and y.dtype == np.float32
    assert abs(mask.mean() - 0.6) < 0.01
    u = ref.dropout_uniform(2024, np.arange(x.size, dtype=np.uint64))
    np.testing.assert_array_equal(mask, (u >= np.float32(0.4)).astype(np.uint8))
    np.testing.assert_allclose(y, mask / np.float32(0.6), rtol=1e-7)
    # Flat row-major index: a reshaped input gets the same mask.
    y2, mask2 = ref.dropout_forward(x.reshape(100, 1000), 0.4, 2024)
    np.testing.assert_array_equal(mask2.ravel(), mask)


def test_dropout_keeps_u_equal_to_p():
    """Kept iff u >= p: an element whose draw equals p exactly is kept."""
    x = np.ones(64, np.float32)
    u = ref.dropout_uniform(9, np.arange(64, dtype=np.uint64))
    j = int(np.argsort(u)[32])                # a draw near the middle, used as p
    p = float(u[j])                           # exactly representable in float32
    _, mask = ref.dropout_forward(x, p, 9)
    assert mask[j] == 1
    np.testing.assert_array_equal(mask, (u >= u[j]).astype(np.uint8))


def test_dropout_p0_identity_and_p1_zero():
    x = rng(3).standard_normal((3, 5, 7, 9)).astype(np.float32)
    y, mask = ref.dropout_forward(x, 0.0, 5)
    np.testing.assert_array_equal(y, x)
    assert mask.all()
    np.testing.assert_array_equal(ref.dropout_backward(x, mask, 0.0), x)
    y, mask = ref.dropout_forward(x, 1.0, 5)
    assert not y.any() and not mask.any()


# ---- SGD ------------------------------------------------------------------------------------

def sgd_loop(params, grads_per_step, lr, momentum, wd, nesterov):
    """PyTorch's SGD formulas, element by element in Python floats (float64)."""
    ps = [list(map(float, p.ravel())) for p in params]
    bufs = [[0.0] * len(p) for p in ps]
    for grads in grads_per_step:
        for p, buf, g in zip(ps, bufs, grads):
            g = list(map(float, g.ravel()))
            for i in range(len(p)):
                d = g[i] + wd * p[i] if wd != 0 else g[i]
                if momentum != 0:
                    buf[i] = momentum * buf[i] + d
                    d = d + momentum * buf[i] if nesterov else buf[i]
                p[i] = p[i] - lr * d
    return ps, bufs


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("wd", [0.0, 5e-3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_three_steps_against_loop(momentum, nesterov, wd, dtype):
    r = rng(31)
    shapes = [(3, 4), (5,), (2, 3, 1, 2)]
    params = [r.standard_normal(s).astype(dtype) for s in shapes]
    grads_per_step = [[r.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    expect_p, expect_b = sgd_loop(params, grads_per_step, 0.1, momentum, wd, nesterov)
    bufs = [np.zeros(s, dtype) for s in shapes]
    ids = [id(p) for p in params]
    for grads in grads_per_step:
        assert ref.sgd_step(params, grads, bufs, 0.1, momentum, wd, nesterov) is None
    assert [id(p) for p in params] == ids
    tol = dict(rtol=0, atol=0) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for p, b, ep, eb in zip(params, bufs, expect_p, expect_b):
        assert p.dtype == dtype
        np.testing.assert_allclose(p.ravel(), ep, **tol)
        np.testing.assert_allclose(b.ravel(), eb, **tol)


# ---- fused residual epilogue and TFE head ----------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (1, 3, 7, 9)])
def test_residual_gradcheck(shape):
    r = rng(shape[0] + 40)
    C = shape[1]
    x = r.standard_normal(shape)
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    s = r.standard_normal(shape)

    def fwd():
        return ref.residual_forward_train(x, s, gamma, beta, np.zeros(C), np.ones(C), 1e-5, 0.1)

    # Move the shortcut so the ReLU input is at least 1e-2 away from the kink.
    pre = ref.batchnorm_forward_train(x, gamma, beta, np.zeros(C), np.ones(C))[0] + s
    s += np.where(np.abs(pre) < 1e-2, np.sign(pre + 1e-30) * 2e-2, 0)
    y, mean, invstd = fwd()
    R = r.standard_normal(shape)
    dx, ds, dgamma, dbeta = ref.residual_backward(R, y, x, gamma, mean, invstd)
    num = numeric_grads(lambda: proj(fwd()[0], R), [x, s, gamma, beta])
    assert_grads_close([dx, ds, dgamma, dbeta], num, ["dx", "dshortcut", "dgamma", "dbeta"])


def test_residual_eval_is_relu_of_bn_eval_plus_shortcut():
    r = rng(41)
    x, s = r.standard_normal((2, 3, 7, 9)), r.standard_normal((2, 3, 7, 9))
    g, b, rm = r.standard_normal(3), r.standard_normal(3), r.standard_normal(3)
    rv = r.uniform(1, 2, 3)
    y = ref.residual_forward_eval(x, s, g, b, rm, rv, 1e-5)
    expect = (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5) * g[:, None, None]
    np.testing.assert_allclose(y, np.maximum(expect + b[:, None, None] + s, 0), rtol=1e-12)


@pytest.mark.parametrize("N,Di,De,O", [(3, 4, 5, 3), (2, 3, 2, 4), (5, 1, 3, 2)])
def test_tfe_head_gradcheck(N, Di, De, O):
    r = rng(N * 1000 + Di * 100 + De * 10 + O)
    D = Di + De
    zi, ze = r.standard_normal((N, Di)) * 2, r.standard_normal((N, De)) + 1
    gamma, beta = r.standard_normal(D), r.standard_normal(D)
    w, b = r.standard_normal((O, D)), r.standard_normal(O)

    def fwd():
        return ref.tfe_head_forward_train(zi, ze, gamma, beta, np.zeros(D), np.ones(D), w, b,
                                          1e-5, 0.1)

    logits, z_hat, mean, invstd = fwd()
    assert logits.shape == (N, O) and z_hat.shape == (N, D)
    R = r.standard_normal((N, O))
    grads = ref.tfe_head_backward(R, zi, ze, z_hat, gamma, mean, invstd, w)
    num = numeric_grads(lambda: proj(fwd()[0], R), [zi, ze, gamma, beta, w, b])
    assert_grads_close(list(grads), num, ["dzi", "dze", "dgamma", "dbeta", "dw", "db"])


def test_tfe_head_is_bn_of_each_part_then_linear():
    r = rng(50)
    zi, ze = r.standard_normal((6, 4)), r.standard_normal((6, 3))
    g, b = r.standard_normal(7), r.standard_normal(7)
    w, bias = r.standard_normal((2, 7)), r.standard_normal(2)
    rm, rv = np.zeros(7), np.ones(7)
    logits, z_hat, _, _ = ref.tfe_head_forward_train(zi, ze, g, b, rm, rv, w, bias, 1e-5, 0.1)
    zi_hat = ref.batchnorm_forward_train(zi, g[:4], b[:4], np.zeros(4), np.ones(4))[0]
    ze_hat = ref.batchnorm_forward_train(ze, g[4:], b[4:], np.zeros(3), np.ones(3))[0]
    np.testing.assert_allclose(z_hat, np.concatenate([zi_hat, ze_hat], 1), rtol=1e-12)
    np.testing.assert_allclose(logits, z_hat @ w.T + bias, rtol=1e-12)
    logits_e, z_hat_e = ref.tfe_head_forward_eval(zi, ze, g, b, rm, rv, w, bias, 1e-5)
    bn_e = ref.batchnorm_forward_eval(np.concatenate([zi, ze], 1), g, b, rm, rv, 1e-5)
    np.testing.assert_allclose(z_hat_e, bn_e, rtol=1e-12)
    np.testing.assert_allclose(logits_e, bn_e @ w.T + bias, rtol=1e-12)


# ---- dtypes and purity ----------------------------------------------------------------------

def all_calls(dtype):
    """(function, args, positions of args it may modify) for every function of the reference."""
    r = rng(60)
    f = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    stats = lambda c: [np.zeros(c, dtype), np.ones(c, dtype)]  # noqa: E731  running mean/var
    x, w, b, dy = f(2, 3, 7, 9), f(4, 3, 3, 3), f(4), f(2, 4, 4, 5)
    x2, g, be = f(5, 3), f(3), f(3)
    pooled, am = ref.maxpool2d_forward(x, 3, 2, 1)
    logits, labels, target = f(3, 4), np.array([0, 3, 1], np.int64), np.abs(f(3, 4))
    zi, ze, hw, hb, hg, hbeta = f(3, 2), f(3, 3), f(2, 5), f(2), f(5), f(5)
    _, zh, sm, si = ref.tfe_head_forward_train(zi, ze, hg, hbeta, *stats(5), hw, hb)
    _, bm, bi = ref.batchnorm_forward_train(x, g, be, *stats(3))
    mask = np.ones(x.shape, np.uint8)
    return [
        (ref.conv2d_forward, [x, w, b, 2, 1], ()),
        (ref.conv2d_backward, [dy, x, w, 2, 1], ()),
        (ref.batchnorm_forward_train, [x, g, be, *stats(3)], (3, 4)),
        (ref.batchnorm_forward_train, [x2, g, be, *stats(3)], (3, 4)),
        (ref.batchnorm_forward_eval, [x, g, be, *stats(3), 1e-5], ()),
        (ref.batchnorm_backward, [x, x, g, bm, bi], ()),
        (ref.relu_forward, [x], ()),
        (ref.relu_backward, [x, x], ()),
        (ref.add_forward, [x, x], ()),
        (ref.maxpool2d_forward, [x, 3, 2, 1], ()),
        (ref.maxpool2d_backward, [pooled, am, 7, 9], ()),
        (ref.gap_forward, [x], ()),
        (ref.gap_backward, [x2, 4, 5], ()),
        (ref.linear_forward, [x2, f(2, 3), f(2)], ()),
        (ref.linear_backward, [f(5, 2), x2, f(2, 3)], ()),
        (ref.dropout_forward, [x, 0.3, 1], ()),
        (ref.dropout_backward, [x, mask, 0.3], ()),
        (ref.concat_forward, [[x, x]], ()),
        (ref.concat_backward, [x, [1, 2]], ()),
        (ref.cross_entropy_forward, [logits, labels], ()),
        (ref.cross_entropy_backward, [target, labels, 0.5], ()),
        (ref.cross_entropy_soft_forward, [logits, target], ()),
        (ref.cross_entropy_soft_backward, [target, target], ()),
        (ref.residual_forward_train, [x, x, g, be, *stats(3)], (4, 5)),
        (ref.residual_forward_eval, [x, x, g, be, *stats(3)], ()),
        (ref.residual_backward, [x, x, x, g, bm, bi], ()),
        (ref.tfe_head_forward_train, [zi, ze, hg, hbeta, *stats(5), hw, hb], (4, 5)),
        (ref.tfe_head_forward_eval, [zi, ze, hg, hbeta, *stats(5), hw, hb], ()),
        (ref.tfe_head_backward, [f(3, 2), zi, ze, zh, hg, sm, si, hw], ()),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_and_inputs_untouched(dtype):
    for fn, args, mutable in all_calls(dtype):
        name = fn.__name__
        frozen = [(a, a.copy()) for j, a in enumerate(args)
                  if isinstance(a, np.ndarray) and j not in mutable]
        out = fn(*args)
        outs = out if isinstance(out, (list, tuple)) else [out]
        for o in outs:
            assert o.dtype.kind != "f" or o.dtype == dtype, (name, o.dtype)
        for a, a0 in frozen:
            np.testing.assert_array_equal(a, a0, err_msg=name)


def test_exports():
    # Every native op has its reference: tests/test_devices.py (from tfe._native.ops()).
    assert callable(ref.get_array_module) and callable(ref.dropout_uniform)
    assert ref.get_array_module(np.zeros(1), None, 1.0) is np
