"""Native ReLU (relu_forward / relu_backward) against the reference: exact, any shape.

The reference itself, in the sections below the native tests: against float64 finite
differences and against PyTorch (skipped without it).
"""
import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads, proj
from helpers import nat, noncontig, raises, randn
from tolerances import assert_close
from torch_oracle import DTYPES, T, close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


SHAPES = [(1,), (5, 13), (1, 3, 7, 9), (5, 13, 9, 7), (2, 3, 4, 5, 6), (8, 16, 48, 48), (0, 3)]


def _x(rng, shape):
    x = randn(rng, *shape)
    x.ravel()[::7] = 0.0  # exact zeros: y == 0 there and the backward must drop dy
    return x


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_forward_backward(device, rng, shape):
    x = _x(rng, shape)
    y = nat(native.relu_forward(x))
    ry = ref.relu_forward(x)
    assert_close(y, ry, "relu", "y")
    dy = randn(rng, *shape)
    assert_close(nat(native.relu_backward(dy, y)), ref.relu_backward(dy, ry), "relu", "dx")


def test_input_not_modified(rng):
    x = _x(rng, (5, 13))
    x0 = x.copy()
    native.relu_forward(x)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("call,match", [
    (lambda x: native.relu_forward(x.astype(np.float64)), "x: "),
    (lambda x: native.relu_forward(x.astype(np.int64)), "x: expected float32"),
    (lambda x: native.relu_forward(noncontig(x)), "x: array is not C-contig"),
    (lambda x: native.relu_forward(None), "x: required"),
], ids=["float64", "int64", "non-contiguous", "None"])
def test_forward_rejects(rng, call, match):
    with raises("relu_forward", match):
        call(randn(rng, 3, 5, 2))


@pytest.mark.parametrize("call,match", [
    (lambda dy, y: native.relu_backward(dy[:2], y), "dy: expected shape"),
    (lambda dy, y: native.relu_backward(dy.reshape(15, 2), y), "dy: expected shape"),
    (lambda dy, y: native.relu_backward(dy.astype(np.float64), y), "dy: "),
    (lambda dy, y: native.relu_backward(dy, y.astype(np.int32)), "y: expected float32"),
    (lambda dy, y: native.relu_backward(noncontig(dy), y), "dy: array is not C-contig"),
], ids=["shape", "reshaped", "dy float64", "y int32", "non-contiguous"])
def test_backward_rejects(rng, call, match):
    with raises("relu_backward", match):
        call(randn(rng, 3, 5, 2), randn(rng, 3, 5, 2))


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

def test_relu_gradcheck():
    r = np.random.default_rng(11)
    x = r.standard_normal((3, 5, 7, 9))
    x = np.where(np.abs(x) < 1e-3, 1e-2, x)               # keep away from the kink
    y = ref.relu_forward(x)
    R = r.standard_normal(x.shape)
    (num,) = numeric_grads(lambda: proj(ref.relu_forward(x), R), [x])
    assert_grads_close([ref.relu_backward(R, y)], [num], ["dx"])
    np.testing.assert_array_equal(ref.relu_backward(R, y), np.where(x > 0, R, 0))


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_vs_torch(torch, dtype):
    F = torch.nn.functional
    r = np.random.default_rng(4)
    x = r.standard_normal((3, 5, 7, 9)).astype(dtype)
    tx = T(x, True)
    ty = F.relu(tx)
    y = ref.relu_forward(x)
    close(y, ty, dtype, "relu y")
    dy = r.standard_normal(x.shape).astype(dtype)
    ty.backward(T(dy))
    close(ref.relu_backward(dy, y), tx.grad, dtype, "relu dx")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x = f(2, 3, 7, 9)
    return [(ref.relu_forward, [x], ()),
            (ref.relu_backward, [x, x], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# relu.cu compiled for the CPU and compared bit for bit with the CPU kernel on the same inputs,
# in guarded device buffers (tests/emulated.py); no GPU needed. Several launches (n up to
# 4099), signed zeros, infinities, a denormal and a NaN.
EMULATED_SIZES = [1, 31, 257, 1000, 4099]


def _emulated_relu_inputs(emulated, rng, n):
    x, dy = emulated.uniform(rng, n, -2, 2), emulated.uniform(rng, n)
    if n > 8:
        x[1:7] = [-0.0, 0.0, np.inf, -np.inf, 1e-45, np.nan]
    return x, dy


@pytest.mark.parametrize("n", EMULATED_SIZES)
def test_emulated_relu_forward(emulated, rng, n):
    x, _ = _emulated_relu_inputs(emulated, rng, n)
    y = np.zeros(n, np.float32)
    emulated.cpu.relu_forward(y, x, n)
    yd = emulated.garbage(n)
    emulated.cuda.relu_forward(yd, x, n)
    emulated.assert_exact(yd, y, "y")


@pytest.mark.parametrize("n", EMULATED_SIZES)
def test_emulated_relu_backward(emulated, rng, n):
    x, dy = _emulated_relu_inputs(emulated, rng, n)
    y = np.zeros(n, np.float32)
    emulated.cpu.relu_forward(y, x, n)
    if n > 8:
        y[6] = 0.0  # the mask input: y of a finite forward
    dx = np.zeros(n, np.float32)
    emulated.cpu.relu_backward(dx, dy, y, n)
    dxd = emulated.garbage(n)
    emulated.cuda.relu_backward(dxd, dy, y, n)
    emulated.assert_exact(dxd, dx, "dx")
