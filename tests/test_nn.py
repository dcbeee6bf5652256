"""Modules and the optimiser: registration, state round trips, train/eval behaviour,
parameter groups and learning-rate schedules."""

import math

import numpy as np
import pytest

import tfe.random
from tfe import nn, optim
from tfe.tensor import Tensor

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py



def _net():
    tfe.random.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.GlobalAvgPool(), nn.Dropout(0.5, seed=3),
                         nn.Linear(4, 3))


def test_registration_and_state_dict_round_trip():
    net = _net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "6.weight", "6.bias"]
    assert [n for n, _ in net.named_buffers()] == ["1.running_mean", "1.running_var"]
    state = net.state_dict()
    tfe.random.manual_seed(1)
    other = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.GlobalAvgPool(), nn.Dropout(0.5), nn.Linear(4, 3))
    assert not np.array_equal(other.state_dict()["0.weight"], state["0.weight"])
    other.load_state_dict(state)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    state["0.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"0\.weight: shape"):
        other.load_state_dict(state)
    with pytest.raises(KeyError, match=r"missing \['6\.bias'\]"):
        other.load_state_dict({k: v for k, v in net.state_dict().items() if k != "6.bias"})


def test_eval_mode_freezes_statistics_and_dropout(rng):
    net = _net()
    x = Tensor(rng.standard_normal((5, 1, 8, 8)).astype(np.float32) * 3 + 1)
    net(x)  # training: running stats move, dropout draws a mask
    bn = net[1]
    after_train = np.array(bn.running_mean, copy=True)
    assert np.abs(after_train).max() > 0
    net.eval()
    y1, y2 = np.asarray(net(x).data), np.asarray(net(x).data)
    np.testing.assert_array_equal(y1, y2)  # no dropout, no statistics in eval
    np.testing.assert_array_equal(np.asarray(bn.running_mean), after_train)
    assert not any(m.training for _, m in net.named_modules())


def test_dropout_masks_differ_per_call_and_follow_the_seed(rng):
    x = Tensor(np.ones((4, 50), np.float32))
    d = nn.Dropout(0.5, seed=7)
    a, b = np.asarray(d(x).data), np.asarray(d(x).data)
    assert not np.array_equal(a, b)
    again = nn.Dropout(0.5, seed=7)
    np.testing.assert_array_equal(np.asarray(again(x).data), a)


@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (8, 16, 12, 12), (6, 5)])
def test_batchnorm_forward_relu_is_relu_of_batchnorm_bit_for_bit(rng, shape):
    """forward_relu (batch norm and ReLU in one pass) gives the bits of relu(bn(x)): output,
    running statistics, and the gradients of x, gamma and beta; in evaluation mode too."""
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    state = {"weight": (0.5 + rng.random(shape[1])).astype(np.float32),
             "bias": (0.3 * rng.standard_normal(shape[1])).astype(np.float32),
             "running_mean": np.zeros(shape[1], np.float32),
             "running_var": np.ones(shape[1], np.float32)}
    results = []
    for fused in (False, True):
        bn = nn.BatchNorm2d(shape[1])
        bn.load_state_dict(state)
        xt = Tensor(x, requires_grad=True)
        y = bn.forward_relu(xt) if fused else nn.ReLU()(bn(xt))
        y.backward(g)
        bn.eval()
        ye = bn.forward_relu(Tensor(x)) if fused else nn.ReLU()(bn(Tensor(x)))
        results.append([y.numpy(), xt.grad.numpy(), bn.weight.grad.numpy(),
                        bn.bias.grad.numpy(), bn.running_mean, bn.running_var, ye.numpy()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sgd_groups_use_their_own_learning_rates():
    a = nn.module.parameter(np.ones(3))
    b = nn.module.parameter(np.ones(3))
    opt = optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}], lr=0.5)
    a.grad = tfe.as_tensor(np.ones(3, np.float32))
    b.grad = tfe.as_tensor(np.ones(3, np.float32))
    opt.step()
    np.testing.assert_allclose(np.asarray(a.data), 0.9, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(b.data), 0.99, rtol=1e-6)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    with pytest.raises(ValueError, match=r"^\[SGD\] a parameter group is empty"):
        optim.SGD([{"params": []}], lr=0.1)


def test_sgd_momentum_state_round_trips():
    p = nn.module.parameter(np.ones(4))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = tfe.as_tensor(np.full(4, 2, np.float32))
    opt.step()
    state = opt.state_dict()
    q = nn.module.parameter(np.asarray(p.data).copy())
    opt2 = optim.SGD([q], lr=0.1, momentum=0.9)
    opt2.load_state_dict(state)
    p.grad = q.grad = tfe.as_tensor(np.ones(4, np.float32))
    opt.step()
    opt2.step()
    np.testing.assert_array_equal(np.asarray(p.data), np.asarray(q.data))


def test_schedules():
    p = nn.module.parameter(np.ones(1))
    opt = optim.SGD([p], lr=0.2)
    step = optim.StepLR(opt, step_size=3, gamma=0.5)
    lrs = []
    for e in range(7):
        step.set_epoch(e)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05])
    cos = optim.CosineLR(opt, epochs=4)
    got = []
    for e in range(5):
        cos.set_epoch(e)
        got.append(opt.param_groups[0]["lr"])
    want = [0.2 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    assert got == pytest.approx(want)
