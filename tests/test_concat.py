"""Native concatenation along axis 1 (concat_forward / concat_backward): exact copies.

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


# (N, [C_j], trailing dims)
CASES = [
    (1, [3], ()),
    (5, [3, 13], ()),
    (5, [13, 1, 5], (7, 9)),
    (1, [3, 5], (7, 9)),
    (2, [0, 4, 0], (3,)),        # empty parts
    (8, [16, 16], (48, 48)),     # paper shape (feature-map fusion)
    (128, [160, 64], ()),        # paper TFE head: identity (160) ++ emotion (64) features
]


def _ids():
    return ["N{}_C{}_{}".format(n, "+".join(map(str, cs)), "x".join(map(str, t)) or "-")
            for n, cs, t in CASES]


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_forward_backward(device, rng, case):
    N, cs, tail = case
    xs = [randn(rng, N, c, *tail) for c in cs]
    y = nat(native.concat_forward(xs))
    assert_close(y, ref.concat_forward(xs), "concat", "y")
    dy = randn(rng, *y.shape)
    dxs = native.concat_backward(dy, cs)
    rdxs = ref.concat_backward(dy, cs)
    assert isinstance(dxs, list) and len(dxs) == len(cs)
    for j, (a, b) in enumerate(zip(dxs, rdxs)):
        assert_close(nat(a), b, "concat", f"dx[{j}]")


def test_tuple_input(device, rng):
    xs = (randn(rng, 2, 3), randn(rng, 2, 5))
    assert_close(nat(native.concat_forward(xs)), ref.concat_forward(list(xs)), "concat", "y")


@pytest.mark.parametrize("xs,match", [
    (lambda r: [], "xs: needs at least one"),
    (lambda r: [randn(r, 2, 3), randn(r, 3, 3)], r"xs\[1\]: expected shape"),
    (lambda r: [randn(r, 2, 3, 4), randn(r, 2, 3, 5)], r"xs\[1\]: expected shape"),
    (lambda r: [randn(r, 2, 3, 4), randn(r, 2, 3)], r"xs\[1\]: expected shape"),
    (lambda r: [randn(r, 5)], r"xs\[0\]: expected at least 2 dimensions"),
    (lambda r: [randn(r, 2, 3), randn(r, 2, 3).astype(np.float64)], r"xs\[1\]: "),
    (lambda r: [randn(r, 2, 3), randn(r, 2, 3).astype(np.int32)], r"xs\[1\]: expected float32"),
    (lambda r: [noncontig(randn(r, 2, 3))], r"xs\[0\]: array is not C-contig"),
    (lambda r: [randn(r, 2, 3), None], r"xs\[1\]: required"),
], ids=["empty list", "batch", "trailing", "rank", "1-d", "float64", "int32", "non-contiguous",
        "None"])
def test_forward_rejects(rng, xs, match):
    with raises("concat_forward", match):
        native.concat_forward(xs(rng))


@pytest.mark.parametrize("dy,sizes,match", [
    (lambda r: randn(r, 2, 8), [3, 4], "sizes add up to 7 but dy has 8"),
    (lambda r: randn(r, 2, 8), [3, 6], "sizes add up to 9"),
    (lambda r: randn(r, 2, 8), [], "sizes: needs at least one"),
    (lambda r: randn(r, 2, 8), [10, -2], "sizes: negative entry"),
    (lambda r: randn(r, 8), [8], "dy: expected at least 2 dimensions"),
    (lambda r: randn(r, 2, 8).astype(np.float64), [8], "dy: "),
    (lambda r: noncontig(randn(r, 2, 8)), [8], "dy: array is not C-contig"),
], ids=["short", "long", "no sizes", "negative", "1-d", "float64", "non-contiguous"])
def test_backward_rejects(rng, dy, sizes, match):
    with raises("concat_backward", match):
        native.concat_backward(dy(rng), sizes)


# ---- reference against float64 finite differences -------------------------------------------
# tfe.reference on its own, in float64: every backward against central finite differences
# of its forward (the method: float64_oracle.py), and hand-written checks of what has no
# gradient to check.

@pytest.mark.parametrize("shapes", [[(3, 2, 7, 9), (3, 5, 7, 9), (3, 1, 7, 9)],
                                    [(1, 4), (1, 3)]])
def test_concat_gradcheck(shapes):
    r = np.random.default_rng(len(shapes[0]))
    xs = [r.standard_normal(s) for s in shapes]
    y = ref.concat_forward(xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=1))
    R = r.standard_normal(y.shape)
    dxs = ref.concat_backward(R, [s[1] for s in shapes])
    assert all(d.flags.c_contiguous for d in dxs)
    num = numeric_grads(lambda: proj(ref.concat_forward(xs), R), xs)
    assert_grads_close(dxs, num, ["dx%d" % j for j in range(len(xs))])


# ---- reference against PyTorch --------------------------------------------------------------
# tfe.reference against PyTorch as an outside oracle (float64 tight, float32 too): the
# ``torch`` fixture (conftest.py) skips these without PyTorch; T, close: torch_oracle.py.

@pytest.mark.parametrize("dtype", DTYPES)
def test_concat_vs_torch(torch, dtype):
    r = np.random.default_rng(4)
    xs = [r.standard_normal((3, c, 7, 9)).astype(dtype) for c in (2, 5, 1)]
    txs = [T(a, True) for a in xs]
    ty = torch.cat(txs, 1)
    close(ref.concat_forward(xs), ty, dtype, "concat y")
    dy = r.standard_normal(ty.shape).astype(dtype)
    ty.backward(T(dy))
    for d, t in zip(ref.concat_backward(dy, [2, 5, 1]), txs):
        close(d, t.grad, dtype, "concat dx")


# ---- reference: dtypes and purity (tests/test_reference.py) ---------------------------------

def reference_calls(f, stats):
    """This op's reference functions for test_reference.py's dtype and purity test."""
    x = f(2, 3, 7, 9)
    return [(ref.concat_forward, [[x, x]], ()),
            (ref.concat_backward, [x, [1, 2]], ())]


# ---- the CUDA kernel under host emulation (tests/cuda_emulation) ----
# concat.cu compiled for the CPU and compared bit for bit with the CPU kernel on the same
# inputs, in guarded device buffers (tests/emulated.py); no GPU needed. 33 and 70 tensors are
# more than one launch's parameter table (32 entries); every other input is misaligned; in
# the backward every 5th gradient is null (and must stay untouched).
EMULATED_CASES = [(1, 2, 5, 4), (3, 1, 1, 3), (5, 3, 7, 2), (33, 2, 3, 3), (70, 3, 1, 4),
                  (40, 1, 9, 1)]  # count, N, inner, largest size


def _emulated_concat_inputs(emulated, rng, count, N, inner, max_size):
    sizes = rng.integers(0, max_size + 1, count).astype(np.intc)
    if count == 3:
        sizes[:] = [300, 0, 1000]  # a tensor of several blocks, and an empty one
    if count >= 33:
        sizes[count // 2] = 0
    xs = [emulated.uniform(rng, N * int(s) * inner) for s in sizes]
    return sizes, xs


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("case", EMULATED_CASES,
                         ids=["count{}-N{}-inner{}".format(*c[:3]) for c in EMULATED_CASES])
def test_emulated_concat(emulated, rng, case, direction):
    count, N, inner, max_size = case
    sizes, xs = _emulated_concat_inputs(emulated, rng, count, N, inner, max_size)
    y = np.zeros(N * int(sizes.sum()) * inner, np.float32)
    emulated.cpu.concat_forward(y, xs, sizes, count, N, inner)
    if direction == "forward":
        yd = emulated.garbage(y.size)
        emulated.cuda.concat_forward(yd, [emulated.misaligned(x, j % 2) for j, x in enumerate(xs)],
                                     sizes, count, N, inner)
        emulated.assert_exact(yd, y, "y")
        return
    dy = emulated.uniform(rng, y.size)
    g = [emulated.uniform(rng, x.size) for x in xs]
    gd = [a.copy() for a in g]
    emulated.cpu.concat_backward([a if j % 5 != 2 else None for j, a in enumerate(g)], dy, sizes,
                                 count, N, inner)
    emulated.cuda.concat_backward([a if j % 5 != 2 else None for j, a in enumerate(gd)], dy,
                                  sizes, count, N, inner)
    for j in range(count):
        emulated.assert_exact(gd[j], g[j], f"dxs[{j}]")
