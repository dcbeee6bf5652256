"""Whole-model numerics judged against float64, with a bound that float32 itself sets.

Two float32 computations of one training step (native kernels, the NumPy reference,
PyTorch, the GPU) may differ by far more than an ulp: batch-norm backward is a
cancellation whose rounding error grows with 1/sqrt(var + eps), and a deep network
compounds it layer after layer. How far they drift apart depends on the summation orders
of the machine's BLAS and kernels, so a constant seen on one CPU is no bound at all (an
AMD EPYC running the AVX2 path once failed such a constant that an AVX-512 Xeon passed).

What does hold on every machine: run the same step once more on the reference backend in
float64 (the *exact* answer for these float32 inputs, to ~1e-16), measure each float32
engine's normwise relative error against it per tensor, and require the engine under test
to be no worse than a small multiple of what the float32 reference achieves on the same
input. The reference is the yardstick of "what float32 can do here": it rounds every stored
intermediate to float32 exactly as any float32 engine must, and its reductions are NumPy's
pairwise sums, neither better nor worse than a sane kernel's. The floor admits tensors that
the reference happens to get almost exact (64 float32 ulps of the tensor's norm).

The reference itself is judged in float64 too: each backward against central finite
differences of its forward (numeric_grads, assert_grads_close), in the sections "reference
against float64 finite differences" of tests/test_<op>.py. They use the projection trick:
L(inputs) = sum(forward(inputs) * R) for a fixed random R (proj), so the analytic gradient
is backward(dy=R) and the numeric one is (L(a + h e_i) - L(a - h e_i)) / 2h for every element
i of every differentiable input a. Non-smooth ops (ReLU, max pooling) get inputs that keep
kinks and ties at least 1e-3 away.
"""
import numpy as np

from tfe import backend, ops
from tfe.tensor import Tensor

FACTOR = 4.0     # the engine may be this many times worse than the float32 reference
FLOOR = 2.0 ** -17  # 64 ulps of 1 in float32: the bound for tensors the reference gets exact


def to_float64(model, opt=None):
    """Turns ``model``'s parameters and buffers (and ``opt``'s momentum buffers) into
    float64 NumPy arrays, in place, for a float64 run on the reference backend."""
    for _, m in model.named_modules():
        for p in m._parameters.values():
            p.data = np.array(p.data, dtype=np.float64)
        for name, b in list(m._buffers.items()):
            a = np.array(b)
            v = a.astype(np.float64) if a.dtype == np.float32 else a
            m._buffers[name] = v
            object.__setattr__(m, name, v)
    if opt is not None:
        for g in opt.param_groups:
            for p in g["params"]:
                opt.state[id(p)] = np.zeros(p.shape, np.float64)
    return model


def train_steps(model, opt, batches, backend_name="native", float64=False):
    """Runs one SGD step per (x, labels) batch; returns the losses, the last step's
    gradients and the final state dict, all as float64 NumPy arrays."""
    if float64:
        to_float64(model, opt)
    losses = []
    with backend.use(backend_name):
        for x, y in batches:
            x = Tensor._wrap(np.asarray(x, np.float64)) if float64 else Tensor(x)
            if model.device != "cpu":
                x = x.to(model.device)
            opt.zero_grad()
            loss = ops.cross_entropy(model(x), y)
            loss.backward()
            grads = {n: np.array(p.grad, dtype=np.float64)
                     for n, p in model.named_parameters() if p.grad is not None}
            opt.step()
            losses.append(loss.item())
    state = {k: np.array(v, dtype=np.float64) for k, v in model.state_dict().items()}
    return np.array(losses), grads, state


def relative_error(got, exact):
    """||got - exact|| / ||exact|| (the absolute error where exact is all zeros)."""
    got, exact = np.asarray(got, np.float64), np.asarray(exact, np.float64)
    norm = np.linalg.norm(exact)
    err = np.linalg.norm(got - exact)
    return err / norm if norm > 0 else err


def assert_as_accurate_as_float32(got, ref32, exact, what, factor=FACTOR, floor=FLOOR):
    """For every key of ``exact``: error(got) <= factor * error(ref32) + floor, errors being
    normwise relative against the float64 ``exact``. ``got`` may hold a subset of the keys
    only if ``exact`` does too: all three must have the same keys."""
    assert got.keys() == exact.keys() == ref32.keys(), f"{what}: different tensors"
    worst = []
    for k in exact:
        assert np.shape(got[k]) == np.shape(exact[k]), f"{what} {k}: shape differs"
        assert np.all(np.isfinite(got[k])), f"{what} {k}: non-finite values"
        e, e32 = relative_error(got[k], exact[k]), relative_error(ref32[k], exact[k])
        worst.append((e / (factor * e32 + floor), k, e, e32))
    use, k, e, e32 = max(worst)
    assert use <= 1.0, (f"{what} {k}: relative error {e:.3g} against float64, more than "
                        f"{factor:g} x the float32 reference's {e32:.3g} + {floor:.3g}")
    return use


# ---- finite differences: the reference's gradients ------------------------------------------

H_STEP = 1e-6    # central-difference step
GRAD_RTOL = 1e-6  # analytic vs numeric gradient, relative to max(1, max |numeric|)


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
        np.testing.assert_allclose(a, n, rtol=GRAD_RTOL, atol=GRAD_RTOL * scale, err_msg=name)


def proj(out, R):
    """The projected loss sum(out * R) as a Python float."""
    return float(np.sum(out * R))
