"""The devices the op tests run on, and the ``native`` and ``ref`` they call.

The op tests (test_conv2d.py, test_batchnorm.py, ...) call ``native.<op>`` on NumPy inputs
and compare with ``ref.<op>`` under the per-op tolerances of tolerances.py. A test that
takes the ``device`` fixture (conftest.py) runs once per device:

* ``cpu``: ``native`` is tfe._native itself;
* ``cuda``: every op of the table (``tfe._native.ops()``, i.e. csrc/ops/ops.def) moves its array
  arguments to the GPU, runs there and brings the results (and in-place updates) back; the
  exact ops (relu, add, concat, dropout, sgd, maxpool) are also compared bit for bit with
  the CPU kernels;
* ``cuda-cupy``: as ``cuda``, with the reference running on CuPy too.

So each CUDA kernel meets exactly the cases, shapes and tolerances its CPU kernel meets.
The ``cuda`` devices skip with a reason on a machine without a GPU. (The host emulation of
the CUDA kernels is not a device here: it is the ``emulated`` fixture, tests/emulated.py.)

``native`` and ``ref`` are imported by the test modules once; which device they run on is
set by the ``device`` fixture for the duration of one test (tests that do not take it, such
as the argument-validation tests, whose checks run in the binding before any device code,
always run on the CPU). Attributes that are not ops (Tensor, as_tensor, set_num_threads,
...) are tfe._native's own on every device.
"""
import contextlib

import numpy as np
import pytest

import tfe.reference as _reference
from tfe import _native

OPS = frozenset(_native.ops())
EXACT_OPS = ("relu", "add", "concat", "dropout", "sgd", "maxpool")
# Every device value of the ``device`` fixture, and the marks that skip it where it cannot run.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.cuda),
    pytest.param("cuda-cupy", marks=pytest.mark.cuda),
]


class _Mirror:
    """Calls ``impl.<op>`` with array arguments moved by ``to_device``; results come back
    with ``to_host``, and arguments the op updated in place are copied back into the
    caller's arrays (running statistics, accumulators, parameters)."""

    def __init__(self, impl, to_device, to_host, compare_cpu=False):
        self.impl, self.to_device, self.to_host = impl, to_device, to_host
        self.compare_cpu = compare_cpu

    def __getattr__(self, name):
        fn = getattr(self.impl, name)

        def call(*args, **kwargs):
            moved = []
            dargs = [self._move(a, moved) for a in args]
            dkwargs = {k: self._move(v, moved) for k, v in kwargs.items()}
            if not moved:  # a host-side helper (e.g. get_array_module)
                return fn(*args, **kwargs)
            expected = None
            if self.compare_cpu and name.startswith(EXACT_OPS):
                expected = getattr(_native, name)(*_copies(args), **_copies(kwargs))
            result = fn(*dargs, **dkwargs)
            for original, on_device in moved:
                _write_back(original, self.to_host(on_device))
            # A result that is an argument's buffer (an accumulator) comes back as the
            # caller's own array, as it does on the CPU.
            originals = {_ptr(d): o for o, d in moved if _ptr(d) is not None}
            result = _map(result, lambda r: originals.get(_ptr(r)) if _ptr(r) in originals
                          else self.to_host(r))
            if expected is not None:
                _assert_same(result, expected, name)
            return result

        return call

    def _move(self, a, moved):
        if isinstance(a, (list, tuple)) and any(_is_array(x) for x in a):
            return type(a)(self._move(x, moved) for x in a)
        if not _is_array(a):
            return a
        d = self.to_device(a)
        moved.append((a, d))
        return d


def _ptr(a):
    if isinstance(a, _native.Tensor):
        return a.data_ptr
    cupy_data = getattr(a, "data", None)
    return getattr(cupy_data, "ptr", None)


def _is_array(a):
    return isinstance(a, (np.ndarray, _native.Tensor))


def _copies(x):
    if isinstance(x, dict):
        return {k: _copies(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_copies(v) for v in x)
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, _native.Tensor):
        return _native.as_tensor(np.array(x, copy=True))
    return x


def _write_back(original, value):
    if isinstance(original, np.ndarray):
        if original.flags.writeable:
            original[...] = value
    else:
        original.copy_(np.ascontiguousarray(value))


def _map(result, f):
    if isinstance(result, tuple):
        return tuple(_map(r, f) for r in result)
    if isinstance(result, list):
        return [_map(r, f) for r in result]
    return None if result is None else f(result)


def _assert_same(got, expected, name):
    got, expected = _map(got, np.asarray), _map(expected, np.asarray)
    for g, e in zip(got if isinstance(got, (tuple, list)) else [got],
                    expected if isinstance(expected, (tuple, list)) else [expected]):
        if e is not None:
            np.testing.assert_array_equal(g, e, err_msg=f"{name}: CUDA differs from the CPU")


def to_cuda(a):
    t = a if isinstance(a, _native.Tensor) else _native.as_tensor(np.ascontiguousarray(a))
    return t.to("cuda")


def _to_host(t):
    return _native.as_tensor(np.array(t.cpu(), copy=True)) if isinstance(t, _native.Tensor) \
        else t


def _cpu_copy(a):
    t = a if isinstance(a, _native.Tensor) else _native.as_tensor(np.ascontiguousarray(a))
    return _native.as_tensor(np.array(t, copy=True))


def _cupy_reference():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    return _Mirror(_reference, lambda a: cupy.asarray(np.asarray(a)),
                   lambda a: cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else a)


def _targets(device):
    """(native ops, reference) for a device; None means the module itself."""
    if device == "cpu":
        return None, None
    if device == "cpu-mirror":  # the harness itself, without a GPU: tests/test_devices.py
        return _Mirror(_native, _cpu_copy, _to_host, compare_cpu=True), None
    native = _Mirror(_native, to_cuda, _to_host, compare_cpu=True)
    if device == "cuda":
        return native, None
    if device == "cuda-cupy":
        return native, _cupy_reference()
    raise ValueError(f"unknown device {device!r}")


class _OnDevice:
    """``module``, with the names in ``names`` (None: every name) run on the current
    test's device."""

    def __init__(self, module, names):
        self._module, self._names, self._target = module, names, None

    def __getattr__(self, name):
        if self._target is None or (self._names is not None and name not in self._names):
            return getattr(self._module, name)
        return getattr(self._target, name)


native = _OnDevice(_native, OPS)
ref = _OnDevice(_reference, None)


@contextlib.contextmanager
def running_on(device):
    """Run the ops of ``native`` (and ``ref``) on ``device`` inside the block."""
    native._target, ref._target = _targets(device)
    try:
        yield device
    finally:
        native._target = ref._target = None
