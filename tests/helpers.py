"""Shared test helpers: native-vs-reference comparisons (test_<op>.py) and the lookup of
the real data copies (skipped with a reason when absent).

Inputs are float32 with magnitudes that keep every output O(1) (weights scaled like He
initialisation, upstream gradients like those of a batch-mean loss), so one absolute +
relative tolerance per op (tests/tolerances.py) fits every shape of that op.
"""
import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

from tfe import _native as native


# tfe-train options of a tiny synthetic run (seconds): conftest's ``run_dir`` is one
TINY = ["--people", "4", "2", "2", "6", "--per-person", "2", "4", "--epochs-identity", "1",
        "--epochs-emotion", "2", "--epochs-joint", "1", "--batch-size", "16", "--no-progress",
        "--seeds", "0"]


def stage_dir(out, stage):
    """The folder of a synthetic tfe-train run that holds ``stage``'s files: the identity
    stage is shared by the seeds (OUT/identity), the others are seed 0's."""
    return out / ("identity" if stage == "identity" else "seed0")


def randn(rng, *shape, scale=1.0, shift=0.0):
    """float32 normal samples, N(shift, scale^2)."""
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


def uniform(rng, *shape, low=0.0, high=1.0):
    return rng.uniform(low, high, shape).astype(np.float32)


def distinct(rng, *shape):
    """float32 values that are pairwise different (no ties for max pooling), in [-1, 1)."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) / n * 2).astype(np.float32).reshape(shape)


def nat(t):
    """A native result as a NumPy array (no copy); None stays None."""
    return None if t is None else np.asarray(t)


@contextlib.contextmanager
def num_threads(n):
    """Run the CPU kernels with n threads, restoring the previous count afterwards."""
    old = native.get_num_threads()  # what tfe.get/set_num_threads re-export
    native.set_num_threads(n)
    try:
        yield
    finally:
        native.set_num_threads(old)


def raises(op, match=""):
    """pytest.raises for the bindings' error contract: ValueError("[op] message")."""
    return pytest.raises(ValueError, match=r"^\[" + op + r"\] " + match)


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def noncontig(a):
    """A non-C-contiguous view with a's shape and values (every other element of a 2x copy)."""
    big = np.repeat(a[..., None], 2, axis=-1)
    v = big[..., 0]
    assert not v.flags.c_contiguous or a.size <= 1
    return v


def ids(cases):
    """Readable pytest ids for tuples of shape parameters."""
    return ["-".join(str(v) for v in c) for c in cases]


def pow2_scale(count):
    """2^-e with 2^e ~ sqrt(count): scales an upstream gradient so that a sum of `count`
    products with O(1) inputs is O(1). Being a power of two, multiplying a result by
    1 / pow2_scale(count) is exact, which lets a test look at a small gradient at O(1) scale
    without changing its relative errors."""
    return 2.0 ** -round(np.log2(np.sqrt(max(count, 1))))


def bn_dx_unit(gamma, invstd, g, ndim):
    """Per-channel power of two ~ |gamma| * invstd * g, shaped to broadcast over a batch-norm
    input of rank ndim.

    The batch-norm input gradient is a cancellation, dx = gamma*invstd * (dy - mean(dy) -
    x_hat * mean(dy * x_hat)), whose float32 rounding error is a few ulp of gamma*invstd*|dy|
    however small dx itself comes out (e.g. batch 2, where dx ~ eps/var * that). Dividing
    dx by this unit (exactly: a power of two) measures it on that natural scale, so one
    tolerance covers well- and ill-conditioned channels alike."""
    a = np.abs(np.asarray(gamma, np.float64)) * np.asarray(invstd, np.float64) * g
    unit = (2.0 ** np.round(np.log2(np.maximum(a, 1e-30)))).astype(np.float32)
    return unit.reshape((1, -1) + (1,) * (ndim - 2))


def run_child(code, *args, env_extra=None, timeout=300):
    """Run `code` in a fresh Python process that imports the same tfe (and these helpers):
    for start-up settings (TFE_GEMM_KERNEL) and for calls that might crash the process."""
    import os
    import subprocess
    import sys

    import tfe
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(tfe.__file__)))
    env = dict(os.environ)
    env.update(env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join(
        [tests_dir, pkg_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


# A child that makes one call and exits 0 iff it raised ValueError("[op] ...") or an
# out-of-memory error; a result (or a crash) means the binding let an impossible size through.
MUST_FAIL_CHILD = """
import resource
import sys
import numpy as np
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # fail fast, never fill memory
from tfe import _native as native
op, expr = sys.argv[1], sys.argv[2]
try:
    out = eval(expr, {"native": native, "np": np})
except ValueError as e:
    assert str(e).startswith("[" + op + "] "), e
    sys.exit(0)
except (MemoryError, RuntimeError) as e:
    assert isinstance(e, MemoryError) or "memory" in str(e), repr(e)
    sys.exit(0)
shape = getattr(out, "shape", None)
nbytes = getattr(out, "nbytes", None)
sys.exit(f"no error: {expr} returned shape {shape}, nbytes {nbytes}")
"""


def assert_fails_cleanly(op, expr):
    r = run_child(MUST_FAIL_CHILD, op, expr, timeout=120)
    assert r.returncode == 0, f"{expr}: exit code {r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}"


REPO = Path(__file__).resolve().parents[1]


def real_data(name):
    """Path of a real data copy, or skip: $TFE_DATA_DIR, else ../shared/data from the repo."""
    base = os.environ.get("TFE_DATA_DIR") or str(REPO.parent / "shared" / "data")
    path = Path(base) / name
    if not path.is_dir():
        pytest.skip(f"real data {name!r} not found under {base} (set TFE_DATA_DIR to the "
                    "folder holding the data copies)")
    return path


def quiet(_msg):
    """A log function that drops loader messages (tests check results, not logs)."""
