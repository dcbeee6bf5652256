"""The autograd layer: gradients of composed graphs against the reference backend and
against finite differences, accumulation, no_grad, and misuse errors."""

import numpy as np
import pytest

from tfe import backend, ops
from tfe.function import no_grad
from tfe.tensor import Tensor

from float64_oracle import assert_as_accurate_as_float32

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py



def _graph(x, w, b, gamma, beta, rm, rv, fc_w, fc_b, labels):
    """conv -> BN -> relu -> (branch reused twice) add -> maxpool -> GAP -> linear -> CE."""
    h = ops.conv2d(x, w, b, stride=1, pad=1)
    h = ops.relu(ops.batch_norm(h, gamma, beta, rm, rv, training=True))
    h = ops.add(h, h)  # a tensor used twice: its gradients must add up
    h = ops.max_pool2d(h, 2)
    z = ops.global_avg_pool(h)
    return ops.cross_entropy(ops.linear(z, fc_w, fc_b), labels)


def _leaves(rng):
    f = lambda *s: Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)  # noqa: E731
    return dict(x=f(3, 2, 7, 9), w=f(5, 2, 3, 3), b=f(5), gamma=f(5), beta=f(5),
                fc_w=f(4, 5), fc_b=f(4))


def _composed_graph_run(backend_name, float64=False):
    leaves = _leaves(np.random.default_rng(7))
    dtype = np.float64 if float64 else np.float32
    if float64:
        for t in leaves.values():
            t.data = np.array(t.data, np.float64)
    rm, rv = np.zeros(5, dtype), np.ones(5, dtype)
    with backend.use(backend_name):
        loss = _graph(leaves["x"], leaves["w"], leaves["b"], leaves["gamma"], leaves["beta"],
                      rm, rv, leaves["fc_w"], leaves["fc_b"], np.array([0, 3, 1], np.int64))
        loss.backward()
    grads = {k: np.array(v.grad, np.float64) for k, v in leaves.items()}
    return grads, {"loss": loss.item(), "running_mean": rm, "running_var": rv}


def test_composed_graph_native_as_accurate_as_the_float32_reference():
    # Judged against the same graph in float64 (tests/float64_oracle.py): batch norm over 3
    # images is ill-conditioned, so two float32 runs may differ by more than any constant.
    exact, ref32, native = (_composed_graph_run("reference", True),
                            _composed_graph_run("reference"), _composed_graph_run("native"))
    for i, what in enumerate(("gradients", "loss and running statistics")):
        assert_as_accurate_as_float32(native[i], ref32[i], exact[i], what)


def test_reference_graph_gradient_matches_finite_differences():
    """The whole tape in float64 on the reference backend, against central differences."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 5, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    fc = rng.standard_normal((4, 3))
    labels = np.array([1, 2], np.int64)

    def loss_of(wv):
        with backend.use("reference"):
            wt = Tensor._wrap(wv, requires_grad=True)
            h = ops.relu(ops.conv2d(Tensor._wrap(x), wt, None, 1, 1))
            loss = ops.cross_entropy(ops.linear(ops.global_avg_pool(h), Tensor._wrap(fc)),
                                     labels)
        return loss, wt

    loss, wt = loss_of(w)
    with backend.use("reference"):
        loss.backward()
    eps, num = 1e-6, np.zeros_like(w)
    for i in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[i] += eps
        wm[i] -= eps
        num[i] = (float(loss_of(wp)[0].data) - float(loss_of(wm)[0].data)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(wt.grad), num, rtol=1e-5, atol=1e-8)


def test_leaf_gradients_accumulate_across_backward_calls(rng):
    x = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    labels = np.array([0, 1], np.int64)
    ops.cross_entropy(ops.linear(x, w), labels).backward()
    first = np.array(w.grad, copy=True)
    ops.cross_entropy(ops.linear(x, w), labels).backward()
    np.testing.assert_allclose(np.asarray(w.grad), 2 * first, rtol=1e-6)


def test_no_grad_records_nothing(rng):
    x = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    with no_grad():
        y = ops.relu(x)
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match=r"^\[backward\] this tensor does not require grad"):
        y.backward()


def test_backward_needs_a_seed_for_non_scalars(rng):
    x = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad must be given"):
        ops.relu(x).backward()
    ops.relu(x).backward(np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(np.asarray(x.grad), (np.asarray(x.data) > 0).astype(np.float32))


def test_reshape_and_concat_route_gradients(rng):
    a = Tensor(rng.standard_normal((2, 3, 2, 2)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal((2, 5)).astype(np.float32), requires_grad=True)
    z = ops.concat([ops.flatten(a), b])
    assert z.shape == (2, 17)
    seed = rng.standard_normal((2, 17)).astype(np.float32)
    z.backward(seed)
    np.testing.assert_array_equal(np.asarray(a.grad), seed[:, :12].reshape(2, 3, 2, 2))
    np.testing.assert_array_equal(np.asarray(b.grad), seed[:, 12:])


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match=r"^\[backend\] unknown backend"):
        with backend.use("tpu"):
            pass
