"""Every CUDA kernel against the reference, by re-running the CPU op tests on the GPU.

The op tests (test_conv2d.py, test_batchnorm.py, ...) call ``native.<op>`` on NumPy inputs
and compare with ``ref.<op>`` under the per-op tolerances of tolerances.py. Here the same
test functions run with ``native`` replaced by a mirror that moves every array argument
to the GPU, runs the op there and brings the results (and in-place updates) back, and with
``ref`` either the NumPy reference or the same reference code running on CuPy. So each
CUDA kernel meets exactly the cases, shapes and tolerances its CPU kernel meets, and the
CPU and CUDA kernels are each held to the same reference; the exact ops (relu, add,
concat, dropout, sgd, maxpool) are also compared bit for bit with the CPU kernels.
"""
import itertools

import numpy as np
import pytest

import test_add
import test_batchnorm
import test_concat
import test_conv2d
import test_cross_entropy
import test_dropout
import test_gap
import test_linear
import test_maxpool
import test_relu
import test_residual
import test_sgd
import test_tfe_head
import tfe
import tfe.reference as reference
from tfe import _native

# The correctness tests of each op file (argument-validation tests stay CPU-only: the
# checks run in the binding, before any device code).
CASES = {
    test_conv2d: ["test_forward", "test_backward", "test_paper_shape", "test_defaults_and_keywords",
                  "test_backward_accumulates_into_given_buffers",
                  "test_deterministic_and_thread_count_independent"],
    test_batchnorm: ["test_train_forward_and_backward", "test_eval_forward", "test_paper_shape",
                     "test_running_stats_over_several_steps", "test_defaults",
                     "test_backward_accumulates",
                     "test_deterministic_and_thread_count_independent"],
    test_relu: ["test_forward_backward"],
    test_add: ["test_forward", "test_same_array_twice"],
    test_maxpool: ["test_forward_backward", "test_default_stride_is_k",
                   "test_ties_first_maximum_wins", "test_negative_inputs_never_pick_padding"],
    test_gap: ["test_forward_backward"],
    test_linear: ["test_forward_backward", "test_defaults", "test_backward_accumulates",
                  "test_deterministic_and_thread_count_independent"],
    test_dropout: ["test_forward_backward_bitwise", "test_seeds_differ",
                   "test_independent_of_thread_count"],
    test_concat: ["test_forward_backward", "test_tuple_input"],
    test_cross_entropy: ["test_hard_labels", "test_soft_targets",
                         "test_soft_with_onehot_equals_hard"],
    test_sgd: ["test_steps_match_reference", "test_momentum_zero_ignores_buffers",
               "test_empty_list_is_a_no_op", "test_thread_count_independent"],
    test_residual: ["test_train_eval_backward", "test_paper_shape",
                    "test_defaults_and_accumulation",
                    "test_deterministic_and_thread_count_independent"],
    test_tfe_head: ["test_train_eval_backward", "test_defaults_and_accumulation",
                    "test_deterministic_and_thread_count_independent"],
}
EXACT_OPS = ("relu", "add", "concat", "dropout", "sgd", "maxpool")


def _expand(fn):
    """The keyword sets of a test function's @pytest.mark.parametrize marks."""
    combos = [{}]
    for mark in getattr(fn, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names = mark.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        values = [v.values if hasattr(v, "values") else v for v in mark.args[1]]
        values = [v if len(names) > 1 else (v,) for v in values]
        combos = [{**c, **dict(zip(names, v))} for c, v in itertools.product(combos, values)]
    return combos


def _params():
    out = []
    for module, names in CASES.items():
        for name in names:
            for i, kwargs in enumerate(_expand(getattr(module, name))):
                out.append(pytest.param(module, name, kwargs,
                                        id=f"{module.__name__[5:]}.{name[5:]}[{i}]"))
    return out


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
            if not moved:  # a host-side helper (e.g. dropout_uniform)
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


def _to_cuda(a):
    t = a if isinstance(a, _native.Tensor) else _native.as_tensor(np.ascontiguousarray(a))
    return t.to("cuda")


def _cuda_to_host(t):
    return _native.as_tensor(np.array(t.cpu(), copy=True)) if isinstance(t, _native.Tensor) \
        else t


def cuda_native():
    return _Mirror(_native, _to_cuda, _cuda_to_host, compare_cpu=True)


def cupy_reference():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    return _Mirror(reference, lambda a: cupy.asarray(np.asarray(a)),
                   lambda a: cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else a)


@pytest.mark.cuda
@pytest.mark.parametrize("reference_on", ["numpy", "cupy"])
@pytest.mark.parametrize("module,name,kwargs", _params())
def test_cuda_kernel(monkeypatch, rng, module, name, kwargs, reference_on):
    monkeypatch.setattr(module, "native", cuda_native())
    if reference_on == "cupy":
        monkeypatch.setattr(module, "ref", cupy_reference())
    fn = getattr(module, name)
    if "rng" in fn.__code__.co_varnames[:fn.__code__.co_argcount]:
        kwargs = {"rng": rng, **kwargs}
    fn(**kwargs)


@pytest.mark.cuda
def test_kernels_stay_on_the_device(rng):
    x = _to_cuda(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    w = _to_cuda(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    y = _native.conv2d_forward(x, w, None, 1, 1)
    assert y.device == "cuda:0" and tuple(y.shape) == (2, 4, 5, 5)
    assert tfe.cuda.memory_stats()["in_use"] > 0


def _cpu_copy(a):
    t = a if isinstance(a, _native.Tensor) else _native.as_tensor(np.ascontiguousarray(a))
    return _native.as_tensor(np.array(t, copy=True))


@pytest.mark.parametrize("module,name,kwargs",
                         [p for p in _params() if p.id.endswith("[0]")])
def test_mirror_harness_on_the_cpu(monkeypatch, rng, module, name, kwargs):
    """The harness itself, without a GPU: arguments are copied to fresh CPU tensors and
    written back, exactly as they travel to and from the device above."""
    monkeypatch.setattr(module, "native", _Mirror(_native, _cpu_copy, _cuda_to_host,
                                                  compare_cpu=True))
    fn = getattr(module, name)
    if "rng" in fn.__code__.co_varnames[:fn.__code__.co_argcount]:
        kwargs = {"rng": rng, **kwargs}
    fn(**kwargs)
