"""Native inverted dropout against the reference: the counter-based RNG, the mask and the
scaled output must be bit-identical (same draws, same single rounding of x / (1 - p)).

The reference itself, in the sections below the native tests: against float64 finite
differences, and its counter-based RNG against the formula in pure Python.
"""
import numpy as np
import pytest

from devices import native, ref
from float64_oracle import assert_grads_close, numeric_grads, proj
from helpers import nat, noncontig, num_threads, raises, randn

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


SEEDS = [0, 1, 12345, 2**63 + 7, 2**64 - 1]
PS = [0.0, 0.4, 0.9, 0.1, 1 / 3, 0.5]
SHAPES = [(5, 13, 7, 9), (1, 3), (7,), (8, 16, 48, 48)]


def _eq(a, b, name):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, name
    # Bitwise: also catches -0.0 vs 0.0 and 1-ulp differences.
    if a.dtype == np.float32:
        a, b = a.view(np.uint32), b.view(np.uint32)
    bad = np.flatnonzero(a.ravel() != b.ravel())
    assert bad.size == 0, f"{name}: {bad.size} of {a.size} elements differ, first at flat {bad[0]}"


def test_uniform_matches_reference(rng):
    idx = np.concatenate([np.arange(1000, dtype=np.uint64),
                          rng.integers(0, 2**64 - 1, 1000, dtype=np.uint64, endpoint=True),
                          np.array([2**64 - 1, 2**63, 2**32 - 1, 2**32], np.uint64)])
    for seed in SEEDS:
        u = native.dropout_uniform(seed, idx)
        _eq(u, ref.dropout_uniform(seed, idx), f"uniform seed {seed}")
        u = np.asarray(u)
        assert u.min() >= 0 and u.max() < 1
    # Shape is kept, and the draws look uniform (not a constant or a mis-scaled value).
    u = np.asarray(native.dropout_uniform(3, np.arange(20000, dtype=np.uint64).reshape(4, 5000)))
    assert u.shape == (4, 5000)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("p", PS, ids=[f"p{p:.3g}" for p in PS])
def test_forward_backward_bitwise(device, rng, shape, p):
    x = randn(rng, *shape)
    dy = randn(rng, *shape)
    seeds = SEEDS if shape != (8, 16, 48, 48) else SEEDS[2:3]
    for seed in seeds:
        y, mask = map(nat, native.dropout_forward(x, p, seed))
        ry, rmask = ref.dropout_forward(x, p, seed)
        _eq(mask, rmask, f"mask seed {seed}")
        _eq(y, ry, f"y seed {seed}")
        _eq(nat(native.dropout_backward(dy, mask, p)), ref.dropout_backward(dy, rmask, p),
            f"dx seed {seed}")
    if p == 0:
        np.testing.assert_array_equal(y, x)
        assert mask.all()
    elif x.size > 10000:
        assert abs(1 - mask.mean() - p) < 0.01  # the drop rate is p


def test_independent_of_thread_count(device, rng):
    x = randn(rng, 8, 16, 32, 32)  # above the kernel's parallel threshold
    with num_threads(1):
        y1, m1 = [nat(t).copy() for t in native.dropout_forward(x, 0.4, 99)]
    with num_threads(2):
        y2, m2 = [nat(t).copy() for t in native.dropout_forward(x, 0.4, 99)]
    _eq(y1, y2, "y")
    _eq(m1, m2, "mask")


def test_seeds_differ(device, rng):
    x = np.ones((1000,), np.float32)
    m1 = nat(native.dropout_forward(x, 0.5, 1)[1])
    m2 = nat(native.dropout_forward(x, 0.5, 2)[1])
    assert (m1 != m2).any()


@pytest.mark.parametrize("call,match", [
    (lambda x: native.dropout_forward(x, 1.0, 0), r"p must be in \[0, 1\)"),
    (lambda x: native.dropout_forward(x, 1.5, 0), r"p must be in \[0, 1\)"),
    (lambda x: native.dropout_forward(x, -0.1, 0), r"p must be in \[0, 1\)"),
    (lambda x: native.dropout_forward(x, float("nan"), 0), r"p must be in \[0, 1\)"),
    (lambda x: native.dropout_forward(x.astype(np.float64), 0.5, 0), "x: "),
    (lambda x: native.dropout_forward(x.astype(np.int64), 0.5, 0), "x: expected float32"),
    (lambda x: native.dropout_forward(noncontig(x), 0.5, 0), "x: array is not C-contig"),
], ids=["p 1", "p 1.5", "p negative", "p nan", "float64", "int64", "non-contiguous"])
def test_forward_rejects(rng, call, match):
    with raises("dropout_forward", match):
        call(randn(rng, 3, 5))


@pytest.mark.parametrize("call,match", [
    (lambda dy, m: native.dropout_backward(dy, m, 1.0), r"p must be in \[0, 1\)"),
    (lambda dy, m: native.dropout_backward(dy, m, -1.0), r"p must be in \[0, 1\)"),
    (lambda dy, m: native.dropout_backward(dy, m.astype(np.float32), 0.5), "mask: expected uint8"),
    (lambda dy, m: native.dropout_backward(dy, m.astype(bool), 0.5), "mask: "),
    (lambda dy, m: native.dropout_backward(dy, m[:2].copy(), 0.5), "mask: expected shape"),
    (lambda dy, m: native.dropout_backward(dy.astype(np.float64), m, 0.5), "dy: "),
    (lambda dy, m: native.dropout_backward(noncontig(dy), m, 0.5), "dy: array is not C-contig"),
], ids=["p 1", "p negative", "mask float32", "mask bool", "mask shape", "dy float64",
        "non-contiguous"])
def test_backward_rejects(rng, call, match):
    dy = randn(rng, 3, 5)
    mask = (randn(rng, 3, 5) > 0).astype(np.uint8)
    with raises("dropout_backward", match):
        call(dy, mask)


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

def test_dropout_gradcheck_fixed_mask():
    """With the seed fixed the mask is fixed, so dropout is linear in x."""
    r = np.random.default_rng(21)
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
    x = np.random.default_rng(3).standard_normal((3, 5, 7, 9)).astype(np.float32)
    y, mask = ref.dropout_forward(x, 0.0, 5)
    np.testing.assert_array_equal(y, x)
    assert mask.all()
    np.testing.assert_array_equal(ref.dropout_backward(x, mask, 0.0), x)
    y, mask = ref.dropout_forward(x, 1.0, 5)
    assert not y.any() and not mask.any()


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x = f(2, 3, 7, 9)
    mask = np.ones(x.shape, np.uint8)
    return [(ref.dropout_forward, [x, 0.3, 1], ()),
            (ref.dropout_backward, [x, mask, 0.3], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# dropout.cu compiled for the CPU and compared bit for bit with the CPU kernel on the same
# inputs, in guarded device buffers (tests/emulated.py); no GPU needed. The CUDA forward draws
# with seed + the device-side offset of captured graphs (advance_dropout_offset), which the
# CPU kernel gets as an explicit seed (emulated.dropout_offset counts the advances).
EMULATED_SEEDS = [0, 42, 2**64 - 1]
EMULATED_CASES = [(n, p, EMULATED_SEEDS[i % 3]) for i, (n, p) in enumerate(
    (n, p) for n in (1, 255, 3001) for p in (0.0, 1e-9, 0.1, 0.5, 1 / 3, 1.0))]


def _emulated_dropout(emulated, rng, n, p, seed, direction):
    x, dy = emulated.uniform(rng, n, -3, 3), emulated.uniform(rng, n)
    y, mask = np.zeros(n, np.float32), np.zeros(n, np.uint8)
    emulated.cpu.dropout_forward(y, mask, x, n, p, (seed + emulated.dropout_offset) % 2**64)
    if direction == "forward":
        yd, maskd = emulated.garbage(n), emulated.garbage(n, np.uint8)
        emulated.cuda.dropout_forward(yd, maskd, x, n, p, seed)
        emulated.assert_exact(yd, y, "y")
        emulated.assert_exact(maskd, mask, "mask")
    else:
        dx = np.zeros(n, np.float32)
        emulated.cpu.dropout_backward(dx, dy, mask, n, p)
        dxd = emulated.garbage(n)
        emulated.cuda.dropout_backward(dxd, dy, mask, n, p)
        emulated.assert_exact(dxd, dx, "dx")


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("n,p,seed", EMULATED_CASES,
                         ids=[f"n{n}-p{p:.3g}-seed{s}" for n, p, s in EMULATED_CASES])
def test_emulated_dropout(emulated, rng, n, p, seed, direction):
    _emulated_dropout(emulated, rng, n, p, seed, direction)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("n,p,seed", [(777, 0.5, 10), (64, 0.25, 2**64 - 1)],
                         ids=["n777-p0.5-seed10", "n64-p0.25-seed-wraps"])
def test_emulated_dropout_after_advance_dropout_offset(emulated, rng, n, p, seed, direction):
    emulated.cuda.advance_dropout_offset()  # seed + offset wraps around for the second seed
    _emulated_dropout(emulated, rng, n, p, seed, direction)
