"""The reference (tfe.reference) as a whole: every function keeps the float dtype of its
inputs and modifies no input it is not specified to update, and the package exports its
helpers.

Each op's own checks of the reference, against float64 finite differences and against
PyTorch, are in its tests/test_<op>.py; so are the calls made here (reference_calls).
"""
import importlib

import numpy as np
import pytest

import tfe.reference as ref
from tfe import _native as native


def op_test_modules():
    """The tests/test_<op>.py of every op of the table (tfe._native.ops()), one per module
    of the reference."""
    stems = sorted({getattr(ref, name).__module__.rsplit(".", 1)[1] for name in native.ops()})
    return [importlib.import_module(f"test_{stem}") for stem in stems]


def all_calls(dtype):
    """(function, args, positions of args it may modify) for the reference functions of
    every op whose test module defines reference_calls(f, stats): f(*shape) draws inputs in
    ``dtype``, stats(c) makes running mean and variance."""
    r = np.random.default_rng(60)

    def f(*shape):
        return r.standard_normal(shape).astype(dtype)

    def stats(c):
        return [np.zeros(c, dtype), np.ones(c, dtype)]

    calls = []
    for module in op_test_modules():
        if hasattr(module, "reference_calls"):
            calls += module.reference_calls(f, stats)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_and_inputs_untouched(dtype):
    for fn, args, mutable in all_calls(dtype):
        name = fn.__name__
        frozen = [(a, a.copy()) for j, a in enumerate(args)
                  if isinstance(a, np.ndarray) and j not in mutable]
        out = fn(*args)
        outs = out if isinstance(out, (list, tuple)) else [out]
        for o in outs:
            assert o.dtype.kind != "f" or o.dtype == dtype, (name, o.dtype)
        for a, a0 in frozen:
            np.testing.assert_array_equal(a, a0, err_msg=name)


def test_exports():
    # Every native op has its reference: tests/test_devices.py (from tfe._native.ops()).
    assert callable(ref.get_array_module) and callable(ref.dropout_uniform)
    assert ref.get_array_module(np.zeros(1), None, 1.0) is np
