"""The op registry and the device harness of the op tests (tests/devices.py).

Every op test that takes the ``device`` fixture runs on every device (cpu, cuda,
cuda-cupy; the CUDA ones skip without a GPU). These tests check what that relies on: that
the op table, the reference and the harness agree, also on a machine without a GPU.
"""
import numpy as np
import pytest

import devices
import test_batchnorm
import test_concat
import test_conv2d
import test_cross_entropy
import test_dropout
import test_sgd
import tfe
import tfe.reference as reference
from tfe import _native


def test_every_native_op_has_a_reference():
    ops = _native.ops()
    assert len(ops) == len(set(ops)) > 0
    for name in ops:
        assert callable(getattr(_native, name)), name
        assert callable(getattr(reference, name, None)), f"tfe.reference has no {name}"


def test_only_ops_move_to_the_device():
    op = _native.ops()[0]
    with devices.running_on("cpu-mirror"):
        assert devices.native.Tensor is _native.Tensor
        assert devices.native.set_num_threads is _native.set_num_threads
        assert getattr(devices.native, op) is not getattr(_native, op)
    assert getattr(devices.native, op) is getattr(_native, op)


# A few op tests through the harness on the CPU: arguments are copied to fresh CPU tensors
# and written back exactly as they travel to and from the GPU (in-place updates,
# accumulators returned as the caller's array, lists of tensors, bitwise comparison).
HARNESS_CASES = [
    (test_conv2d.test_backward_accumulates_into_given_buffers, {}),
    (test_batchnorm.test_running_stats_over_several_steps, {"shape": (3, 5, 7, 9)}),
    (test_concat.test_forward_backward, {"case": test_concat.CASES[0]}),
    (test_cross_entropy.test_hard_labels, {"case": test_cross_entropy.CASES[0]}),
    (test_dropout.test_forward_backward_bitwise, {"shape": (3, 5, 7), "p": 0.5}),
    (test_sgd.test_steps_match_reference, {"hyper": test_sgd.HYPER[-1]}),
]


@pytest.mark.parametrize("fn,kwargs", HARNESS_CASES,
                         ids=[f"{fn.__module__[5:]}.{fn.__name__[5:]}" for fn, _ in HARNESS_CASES])
def test_mirror_harness_on_the_cpu(rng, fn, kwargs):
    with devices.running_on("cpu-mirror") as device:
        fn(device=device, rng=rng, **kwargs)


@pytest.mark.cuda
def test_kernels_stay_on_the_device(rng):
    x = devices.to_cuda(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    w = devices.to_cuda(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    y = _native.conv2d_forward(x, w, None, 1, 1)
    assert y.device == "cuda:0" and tuple(y.shape) == (2, 4, 5, 5)
    assert tfe.cuda.memory_stats()["in_use"] > 0
