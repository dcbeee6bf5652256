"""The distillation loss: the reference against float64 finite differences and in closed
form, and the autograd op (which runs the reference on the host) against the reference."""

import numpy as np
import pytest

from tfe import ops
from tfe.reference.cosine_loss import EPS, cosine_loss_backward, cosine_loss_forward
from tfe.tensor import Tensor

pytestmark = pytest.mark.numerics

SHAPES = [(1, 1), (3, 5), (17, 128), (129, 131)]


def _case(rng, n, d, zero_targets=True, zero_preds=True):
    p = rng.standard_normal((n, d))
    t = rng.standard_normal((n, d))
    if zero_targets and n > 2:
        t[::3] = 0.0  # rows without a target
    if zero_preds and n > 2:
        p[1] = 0.0  # a zero prediction: gradient 0, not NaN
    return p, t


@pytest.mark.parametrize("n,d", SHAPES)
def test_reference_gradient_matches_finite_differences(rng, n, d):
    p, t = _case(rng, n, d, zero_preds=False)
    w, g = 1.7, 0.6
    grad = cosine_loss_backward(p, t, w, g)
    h = 1e-6
    for _ in range(min(20, n * d)):  # random coordinates, central differences in float64
        i, j = rng.integers(n), rng.integers(d)
        up, down = p.copy(), p.copy()
        up[i, j] += h
        down[i, j] -= h
        fd = g * (cosine_loss_forward(up, t, w) - cosine_loss_forward(down, t, w)) / (2 * h)
        assert abs(fd - grad[i, j]) <= 1e-6 * max(1.0, abs(fd))


def test_reference_closed_forms():
    p = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    t = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # same, orthogonal, none
    assert float(cosine_loss_forward(p, t)) == pytest.approx((0.0 + 1.0) / 2)
    assert float(cosine_loss_forward(p, t, weight=3.0)) == pytest.approx(1.5)
    assert float(cosine_loss_forward(p, np.zeros_like(t))) == 0.0
    assert not cosine_loss_backward(p, np.zeros_like(t)).any()
    grad = cosine_loss_backward(p, t)
    assert not grad[2].any() and not grad[0].any()  # no target; already aligned
    # orthogonal: d(1 - cos)/dp = -t/(|p||t|) / M
    assert np.allclose(grad[1], [-1.0 / 2 / 2, 0.0])
    zero = np.zeros((1, 2))
    assert not cosine_loss_backward(zero, np.ones((1, 2))).any()
    assert float(cosine_loss_forward(zero, np.ones((1, 2)))) == 1.0  # cos 0 at |p| <= eps
    assert EPS == 1e-8


@pytest.mark.parametrize("n,d", SHAPES)
def test_op_equals_the_reference_in_float32(rng, n, d):
    p64, t64 = _case(rng, n, d)
    p, t = p64.astype(np.float32), t64.astype(np.float32)
    w = 0.5
    x = Tensor(p, requires_grad=True)
    logits = Tensor(np.zeros((2, 4), np.float32), requires_grad=True)
    other = ops.cross_entropy(logits, np.array([0, 3]))  # log 4
    loss = ops.add(ops.cosine_loss(x, t, weight=w), other)  # dloss arrives as an array
    loss.backward()
    want = float(cosine_loss_forward(p64, t64, w)) + float(np.float32(np.log(4.0)))
    # float32 inputs, float64 arithmetic: the result is the float32 rounding of the answer
    assert abs(float(np.asarray(loss.data)) - want) <= 2.0 ** -21 * max(1.0, abs(want))
    ref = cosine_loss_backward(p64, t64, w)
    got = np.asarray(x.grad)
    scale = np.abs(ref).max() if ref.any() else 1.0
    assert got.shape == p.shape and np.isfinite(got).all()
    assert np.abs(got - ref).max() <= 2.0 ** -20 * scale


def test_bad_shapes_name_the_op():
    with pytest.raises(ValueError, match=r"\[cosine_loss\] pred must be \[N, D\]"):
        cosine_loss_forward(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\[cosine_loss\]"):
        ops.cosine_loss(Tensor(np.zeros(3, np.float32), requires_grad=True),
                        np.zeros(3, np.float32))
