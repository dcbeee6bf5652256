"""Native elementwise add (add_forward) against the reference: exact, any shape.

The reference itself, in the sections below the native tests: against float64 finite
differences.
"""
import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads, proj
from helpers import nat, noncontig, raises, randn
from tolerances import assert_close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


SHAPES = [(1,), (5, 13), (1, 3, 7, 9), (5, 13, 9, 7), (2, 3, 4, 5, 6), (8, 16, 48, 48), (0, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_forward(device, rng, shape):
    a, b = randn(rng, *shape), randn(rng, *shape)
    a0, b0 = a.copy(), b.copy()
    assert_close(nat(native.add_forward(a, b)), ref.add_forward(a, b), "add", "y")
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_same_array_twice(device, rng):
    a = randn(rng, 5, 13)
    assert_close(nat(native.add_forward(a, a)), ref.add_forward(a, a), "add", "y")


@pytest.mark.parametrize("call,match", [
    (lambda a, b: native.add_forward(a, b[:, :3].copy()), "b: expected shape"),
    (lambda a, b: native.add_forward(a, b.reshape(4, 5, 1)), "b: expected shape"),
    (lambda a, b: native.add_forward(a, b.reshape(-1)), "b: expected shape"),
    (lambda a, b: native.add_forward(a.astype(np.float64), b), "a: "),
    (lambda a, b: native.add_forward(a, b.astype(np.int64)), "b: expected float32"),
    (lambda a, b: native.add_forward(noncontig(a), b), "a: array is not C-contig"),
    (lambda a, b: native.add_forward(a, None), "b: required"),
], ids=["shape", "rank", "flat", "float64", "int64", "non-contiguous", "None"])
def test_rejects(rng, call, match):
    with raises("add_forward", match):
        call(randn(rng, 4, 5), randn(rng, 4, 5))


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

def test_add_gradcheck():
    r = np.random.default_rng(12)
    a, b = r.standard_normal((3, 5, 7, 9)), r.standard_normal((3, 5, 7, 9))
    R = r.standard_normal(a.shape)
    num = numeric_grads(lambda: proj(ref.add_forward(a, b), R), [a, b])
    assert_grads_close([R, R], num, ["da", "db"])


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x = f(2, 3, 7, 9)
    return [(ref.add_forward, [x, x], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# add.cu compiled for the CPU and compared bit for bit with the CPU kernel on the same inputs,
# in guarded device buffers (tests/emulated.py); no GPU needed. The output, and for odd n one
# input, sit one float off 16-byte alignment: the float4 path and its scalar fallback.
@pytest.mark.parametrize("n", [1, 31, 257, 1000, 4099])
def test_emulated_add(emulated, rng, n):
    a, b = emulated.uniform(rng, n, -3, 3), emulated.uniform(rng, n, -3, 3)
    y = np.zeros(n, np.float32)
    emulated.cpu.add_forward(y, a, b, n)
    yd = emulated.garbage(n)
    emulated.cuda.add_forward(emulated.misaligned(yd), emulated.misaligned(a, n % 2), b, n)
    emulated.assert_exact(yd, y, "y")
