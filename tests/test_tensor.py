"""tfe.Tensor: zero-copy exchange with NumPy and DLPack, errors, threads, CUDA reporting."""

import pickle

import numpy as np
import pytest

import tfe
from tfe import _native


def test_numpy_round_trip_shares_memory(rng):
    a = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    t = tfe.as_tensor(a)
    assert t.shape == (2, 3, 7, 9) and t.dtype == "float32" and t.device == "cpu"
    back = np.asarray(t)
    assert np.shares_memory(a, back)
    a[0, 0, 0, 0] = 42.0  # a write through one is seen through the other
    assert back[0, 0, 0, 0] == 42.0


def test_device_is_parsed_once_and_compares_with_its_name():
    cuda1 = tfe.Device("cuda:1")
    assert (cuda1.type, cuda1.index, cuda1.is_cuda, str(cuda1)) == ("cuda", 1, True, "cuda:1")
    assert tfe.Device("cuda") == "cuda:0" == tfe.Device("cuda:0") != cuda1
    assert tfe.Device(cuda1) == cuda1 and hash(tfe.Device("cuda:1")) == hash(cuda1)
    assert tfe.Device("cpu") != "gpu" and tfe.Device("cpu") != 0  # not equal, no error
    assert pickle.loads(pickle.dumps(cuda1)) == cuda1  # a Protocol field: asdict copies it
    assert isinstance(tfe.zeros([2]).device, tfe.Device) and tfe.zeros([2]).device == "cpu"
    assert tfe.zeros([2], device=tfe.Device("cpu")).device == "cpu"
    for bad, match in (("gpu", "unknown device 'gpu'"), ("cuda:x", "unknown device"),
                       (3, "expected a tfe.Device or 'cpu'.*got int")):
        with pytest.raises(ValueError, match=match):
            tfe.Device(bad)
    with pytest.raises(ValueError, match=r"\[zeros\] device: expected a tfe.Device"):
        tfe.zeros([2], device=None)


def test_output_tensor_outlives_python_reference(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    view = np.asarray(_native.relu_forward(x))  # the Tensor itself is dropped here
    np.testing.assert_array_equal(view, np.maximum(x, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.uint8])
def test_dtypes_and_numpy_method(dtype):
    a = np.arange(12, dtype=dtype).reshape(3, 4)
    t = tfe.as_tensor(a)
    assert t.dtype == np.dtype(dtype).name
    np.testing.assert_array_equal(t.numpy(), a)
    np.testing.assert_array_equal(memoryview(t), a)  # buffer protocol


def test_zero_d_and_empty_tensors():
    z = tfe.zeros(())
    assert z.shape == () and np.asarray(z) == 0
    e = tfe.empty((0, 4))
    assert np.asarray(e).shape == (0, 4)


def test_dlpack_to_and_from_numpy(rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    t = tfe.from_dlpack(a)
    assert np.shares_memory(np.asarray(t), a)
    b = np.from_dlpack(t)
    assert np.shares_memory(b, a)
    assert t.__dlpack_device__() == (1, 0)


def test_dlpack_capsule_is_consumed_once(rng):
    t = tfe.as_tensor(rng.standard_normal(3).astype(np.float32))
    capsule = t.__dlpack__()
    tfe.from_dlpack(capsule)
    with pytest.raises(ValueError, match=r"^\[from_dlpack\] .*consumed"):
        tfe.from_dlpack(capsule)


def test_dlpack_with_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is optional: pip install torch==2.13.0")
    a = rng.standard_normal((2, 3)).astype(np.float32)
    t = tfe.as_tensor(a)
    tt = torch.from_dlpack(t)
    assert tt.data_ptr() == np.asarray(t).ctypes.data
    back = tfe.from_dlpack(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    np.testing.assert_array_equal(np.asarray(back), np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(ValueError, match=r"not C-contiguous"):
        tfe.from_dlpack(torch.zeros(4, 5).t())


def test_bad_inputs_name_the_op_and_argument():
    x = np.zeros((2, 3), np.float64)
    with pytest.raises(ValueError, match=r"^\[relu_forward\] x: unsupported dtype float64"):
        _native.relu_forward(x)
    with pytest.raises(ValueError, match=r"^\[relu_forward\] x: array is not C-contiguous"):
        _native.relu_forward(np.zeros((4, 6), np.float32)[:, ::2])
    with pytest.raises(ValueError, match=r"^\[relu_forward\] x: expected a NumPy array"):
        _native.relu_forward([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^\[relu_forward\] x: expected float32, got int64"):
        _native.relu_forward(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"^\[zeros\] unknown device 'gpu'"):
        tfe.zeros((2,), device="gpu")
    with pytest.raises(ValueError, match=r"^\[zeros\] unknown dtype"):
        tfe.zeros((2,), dtype="float16")


def test_threads_setting_round_trips():
    before = tfe.get_num_threads()
    try:
        tfe.set_num_threads(1)
        assert tfe.get_num_threads() == 1
        with pytest.raises(ValueError, match=r"^\[set_num_threads\]"):
            tfe.set_num_threads(0)
    finally:
        tfe.set_num_threads(before)


def test_threads_follow_omp_num_threads():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import tfe; print(tfe.get_num_threads())"],
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_cuda_reports_cleanly_without_a_gpu():
    if tfe.cuda.is_available():
        pytest.skip("a GPU is present; this checks the no-GPU path")
    assert tfe.cuda.device_count() == 0
    assert tfe.cuda.unavailable_reason()
    with pytest.raises(RuntimeError, match=r"CUDA"):
        tfe.zeros((4,), device="cuda")
    t = tfe.as_tensor(np.ones(4, np.float32))
    with pytest.raises(RuntimeError, match=r"CUDA"):
        t.to("cuda")


@pytest.mark.cuda
def test_cuda_relu_matches_cpu(rng):
    x = rng.standard_normal((5, 7, 9)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    xg = tfe.as_tensor(x).to("cuda")
    y = _native.relu_forward(xg)
    assert y.device == "cuda:0"
    dx = _native.relu_backward(tfe.as_tensor(dy).to("cuda"), y)
    np.testing.assert_array_equal(np.asarray(y.cpu()), np.maximum(x, 0))
    np.testing.assert_array_equal(np.asarray(dx.cpu()), dy * (x > 0))


@pytest.mark.cuda
def test_cuda_copy_in_place_and_round_trip(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    g = tfe.zeros((3, 5), device="cuda")
    g.copy_(x)
    np.testing.assert_array_equal(np.asarray(g.cpu()), x)
    h = tfe.zeros((3, 5), device="cuda")
    h.copy_(g)  # device to device
    np.testing.assert_array_equal(np.asarray(h.cpu()), x)


def test_copy_in_place_keeps_storage_and_checks_shape(rng):
    t = tfe.zeros((2, 3))
    view = np.asarray(t)
    t.copy_(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(view, np.arange(6).reshape(2, 3))  # same memory
    with pytest.raises(ValueError, match=r"^\[Tensor.copy_\] src is float32 \(3, 2\)"):
        t.copy_(np.zeros((3, 2), np.float32))


@pytest.mark.cuda
def test_cuda_dlpack_with_cupy(rng):
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    x = cupy.asarray(rng.standard_normal((3, 4)).astype(np.float32))
    t = tfe.from_dlpack(x)
    assert t.device == "cuda:0"
    back = cupy.from_dlpack(t)
    assert back.data.ptr == x.data.ptr


@pytest.mark.cuda
def test_mixed_devices_are_rejected_before_any_kernel_runs():
    a = tfe.as_tensor(np.ones(4, np.float32))
    b = a.to("cuda")
    with pytest.raises(ValueError, match=r"^\[add_forward\] b is on cuda:0 but a is on cpu"):
        _native.add_forward(a, b)


def test_huge_shapes_are_refused_not_wrapped():
    with pytest.raises(ValueError, match=r"^\[zeros\] shape .* too large"):
        tfe.zeros([2**31, 2**31])
    with pytest.raises(ValueError, match=r"^\[empty\] shape .* too large"):
        tfe.empty([2**32, 2**32, 2])
    with pytest.raises(ValueError, match=r"^\[empty\] shape .* negative"):
        tfe.empty([-1, 3])
