"""The host emulation of the CUDA kernels itself (tests/emulated.py, tests/cuda_emulation).

The cases live with each op: the ``test_emulated_*`` section at the end of tests/test_<op>.py
runs the op's CUDA kernel under emulation next to its CPU kernel. Here: every op of the table
has such cases, the library exports every op, and a CUDA call's checks catch what they
promise. What the emulation does and does not prove: tests/cuda_emulation/README.md.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from emulated import DeviceBuffer, kernel_signatures

TESTS = Path(__file__).resolve().parent


def test_every_op_of_the_table_has_emulated_cases():
    # The op table (csrc/ops/ops.def) is what both kernel headers declare; a new op's CUDA
    # kernel must also get test_emulated_* cases in its test file (compared there with its
    # CPU kernel).
    ops = kernel_signatures()
    assert len(ops) > 20
    calls = set()
    for path in TESTS.glob("test_*.py"):
        calls.update(re.findall(r"\bemulated\.cuda\.(\w+)\(", path.read_text()))
    missing = [op for op in ops if op not in calls]
    assert not missing, (f"no test calls emulated.cuda.{missing[0]}(...) (missing: {missing}); "
                         "add test_emulated_* cases at the end of the op's test file")


def test_the_library_exports_every_op_of_the_table(emulated):
    ops = sorted(kernel_signatures())
    assert dir(emulated.cpu) == ops and dir(emulated.cuda) == ops


def test_device_buffers_are_guarded_and_placed():
    a = np.arange(7, dtype=np.float32)
    aligned, shifted = DeviceBuffer(a, 0, "a"), DeviceBuffer(a, 1, "a")
    assert aligned.ptr % 16 == 0 and shifted.ptr % 16 == 4
    np.testing.assert_array_equal(shifted.data(), a)
    for b in (aligned, shifted):
        guards = np.concatenate([b.mem[:b.lo], b.mem[b.hi:]])
        assert np.isnan(guards[:len(guards) // 4 * 4].view(np.float32)).all()
        b.check_guards()
    assert not np.array_equal(aligned.fill[:4], shifted.fill[:4])  # a pattern per buffer


def test_a_kernel_writing_out_of_bounds_fails_the_call(emulated):
    x, y = np.ones(6, np.float32), emulated.garbage(5)  # y one element short
    with pytest.raises(AssertionError, match=r"relu_forward: y: written out of bounds.*y\[5\]"):
        emulated.cuda.relu_forward(y, x, 6)
