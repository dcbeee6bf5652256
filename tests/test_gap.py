"""Native global average pooling (gap_forward / gap_backward) against the reference.

The reference itself, in the sections below the native tests: against float64 finite
differences and against PyTorch (skipped without it).
"""
import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads, proj
from helpers import assert_fails_cleanly, nat, noncontig, raises, randn
from tolerances import assert_close
from torch_oracle import DTYPES, T, close

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


SHAPES = [(1, 3, 7, 9), (5, 13, 9, 7), (2, 5, 1, 1), (3, 1, 1, 17), (8, 16, 48, 48),
          (64, 512, 3, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_forward_backward(device, rng, shape):
    N, C, H, W = shape
    x = randn(rng, *shape, shift=0.5)
    assert_close(nat(native.gap_forward(x)), ref.gap_forward(x), "gap", "y")
    dy = randn(rng, N, C)
    assert_close(nat(native.gap_backward(dy, H, W)), ref.gap_backward(dy, H, W), "gap", "dx")


@pytest.mark.parametrize("call,match", [
    (lambda x: native.gap_forward(x.astype(np.float64)), "x: "),
    (lambda x: native.gap_forward(x.astype(np.int64)), "x: expected float32"),
    (lambda x: native.gap_forward(x[0]), "x: expected 4-d"),
    (lambda x: native.gap_forward(x[:0]), "x: empty"),
    (lambda x: native.gap_forward(noncontig(x)), "x: array is not C-contig"),
], ids=["float64", "int64", "rank 3", "empty", "non-contiguous"])
def test_forward_rejects(rng, call, match):
    with raises("gap_forward", match):
        call(randn(rng, 2, 3, 4, 5))


@pytest.mark.parametrize("call,match", [
    (lambda dy: native.gap_backward(dy, 0, 3), "H and W must be >= 1"),
    (lambda dy: native.gap_backward(dy, 3, -1), "H and W must be >= 1"),
    (lambda dy: native.gap_backward(dy[:, :, None], 3, 3), "dy: expected 2-d"),
    (lambda dy: native.gap_backward(dy.astype(np.float64), 3, 3), "dy: "),
    (lambda dy: native.gap_backward(noncontig(dy), 3, 3), "dy: array is not C-contig"),
], ids=["H 0", "W -1", "rank 3", "float64", "non-contiguous"])
def test_backward_rejects(rng, call, match):
    with raises("gap_backward", match):
        call(randn(rng, 2, 3))


@pytest.mark.parametrize("H,W", [(2**31, 2**31), (2**32, 2**30)], ids=["2^31x2^31", "2^32x2^30"])
def test_backward_impossible_sizes_fail_cleanly(H, W):
    # The output [1, 1, H, W] needs 2^64 bytes (which wraps to 0 in size_t): must raise, never
    # return a tensor without memory behind it. (Only sizes whose byte count overflows are
    # tried: a merely huge output would really be allocated and filled.)
    assert_fails_cleanly("gap_backward",
                         f"native.gap_backward(np.ones((1, 1), np.float32), {H}, {W})")


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

@pytest.mark.parametrize("shape", [(1, 3, 7, 9), (3, 5, 7, 9), (2, 3, 1, 1)])
def test_gap_gradcheck(shape):
    r = np.random.default_rng(sum(shape))
    x = r.standard_normal(shape)
    y = ref.gap_forward(x)
    assert y.shape == shape[:2]
    R = r.standard_normal(y.shape)
    (num,) = numeric_grads(lambda: proj(ref.gap_forward(x), R), [x])
    assert_grads_close([ref.gap_backward(R, *shape[2:])], [num], ["dx"])


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3, 7, 9), (3, 5, 7, 9), (2, 4, 1, 1)])
def test_gap_vs_torch(torch, dtype, shape):
    F = torch.nn.functional
    r = np.random.default_rng(sum(shape))
    x = r.standard_normal(shape).astype(dtype)
    tx = T(x, True)
    ty = F.adaptive_avg_pool2d(tx, 1)
    y = ref.gap_forward(x)
    close(y, ty.reshape(shape[:2]), dtype, "y")
    dy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(T(dy).reshape(ty.shape))
    close(ref.gap_backward(dy, *shape[2:]), tx.grad, dtype, "dx")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x, x2 = f(2, 3, 7, 9), f(5, 3)
    return [(ref.gap_forward, [x], ()),
            (ref.gap_backward, [x2, 4, 5], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# gap.cu compiled for the CPU and compared with the CPU kernel on the same inputs, in guarded
# device buffers (tests/emulated.py); no GPU needed. The backward is one division per
# element, as on the CPU: bit-exact.
# N, C, HW, pointer shift (1: misaligned, forces the scalar path)
EMULATED_CASES = [(1, 1, 1, 0), (2, 3, 7, 0), (2, 5, 64, 0), (2, 5, 64, 1), (3, 2, 49, 0),
                  (1, 16, 100, 0), (2, 1, 4, 1), (5, 33, 9, 0), (8, 16, 2304, 0)]


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("case", EMULATED_CASES, ids=[
    "{}x{}x{}".format(*c) + ("-misaligned" if c[3] else "") for c in EMULATED_CASES])
def test_emulated_gap(emulated, rng, case, direction):
    N, C, HW, shift = case
    if direction == "forward":
        x = emulated.uniform(rng, N * C * HW, -2, 3)
        y = np.zeros(N * C, np.float32)
        emulated.cpu.gap_forward(y, x, N, C, HW)
        yd = emulated.garbage(N * C)
        emulated.cuda.gap_forward(yd, emulated.misaligned(x, shift), N, C, HW)
        emulated.assert_close(yd, y, "gap", "y")
    else:
        dy = emulated.uniform(rng, N * C)
        dx = np.zeros(N * C * HW, np.float32)
        emulated.cpu.gap_backward(dx, dy, N, C, HW)
        dxd = emulated.garbage(N * C * HW)
        emulated.cuda.gap_backward(emulated.misaligned(dxd, shift), dy, N, C, HW)
        emulated.assert_exact(dxd, dx, "dx")
