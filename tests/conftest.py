"""Shared test fixtures: seeded random inputs, the devices of the op tests (``device``,
tests/devices.py), the CUDA skip rule, the report header that names the CPU kernel level
the run uses, a finished tiny training run, the C++ library (built once per session for
the tests that call it) and PyTorch for the tests that use it as an oracle."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import devices
import tfe
import torch_oracle


def pytest_report_header(config):
    return f"tfe gemm kernel: {tfe._native.gemm_kernel()} (TFE_GEMM_KERNEL forces a lower one)"


def pytest_collection_modifyitems(config, items):
    if tfe.cuda.is_available():
        return
    reason = f"needs a CUDA GPU: {tfe.cuda.unavailable_reason()}"
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A finished tiny tfe-train run (helpers.TINY), shared by the tests that read one."""
    from helpers import TINY
    from tfe import cli

    out = tmp_path_factory.mktemp("run")
    assert cli.train_main(TINY + ["--out", str(out)]) == 0
    return out


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: inputs are reproducible run to run."""
    return np.random.default_rng(1234)


ROOT = Path(__file__).resolve().parents[1]


def cxx_compiler():
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


# The engine's CPU kernels as a test compiles them into its own program: every source of the
# folders CMakeLists.txt compiles into tfe_core except the Tensor layer (tensor.cpp,
# dispatch.cpp) and the CPU-only build's stand-in for the CUDA runtime (no_cuda.cpp).
KERNEL_DIRS = ("core", "ops", "gemm", "conv")
NOT_KERNELS = frozenset({"tensor.cpp", "dispatch.cpp", "no_cuda.cpp"})
# Per-file flags of the real build: the SIMD files (name suffix) are compiled for their
# instruction set and picked at run time from what the CPU supports.
ISA_FLAGS = {"_avx2": ["-mavx2", "-mfma"],
             "_avx512": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mfma"]}


def cpu_kernel_sources(root=ROOT):
    csrc = Path(root) / "csrc"
    return sorted(p for d in KERNEL_DIRS for p in (csrc / d).glob("*.cpp")
                  if p.name not in NOT_KERNELS)


def isa_flags(src):
    """The instruction-set flags CMakeLists.txt gives this source file."""
    return next((f for suffix, f in ISA_FLAGS.items() if Path(src).stem.endswith(suffix)), [])


def run_checked(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="session")
def tfe_cmake_dir(tmp_path_factory):
    """The tfe CMake package folder: the installed one, or one installed from this tree."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    if cxx_compiler() is None:
        pytest.skip("no C++ compiler (c++, g++ or clang++) found")
    r = subprocess.run([sys.executable, "-m", "tfe", "--cmakedir"], capture_output=True,
                       text=True)
    tfe_dir = r.stdout.strip() if r.returncode == 0 else ""
    if not tfe_dir:
        # No installed library (a development build): install one from this source tree.
        if not (ROOT / "CMakeLists.txt").is_file():
            pytest.skip("tfe has no installed C++ library and the source tree is not here")
        work = tmp_path_factory.mktemp("lib")
        build, prefix = work / "lib-build", work / "prefix"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        run_checked([cmake, "-S", ROOT, "-B", build, *generator, "-DTFE_CUDA=OFF",
                     "-DTFE_BUILD_PYTHON=OFF", "-DCMAKE_BUILD_TYPE=Release"])
        run_checked([cmake, "--build", build, "--parallel", "2"])
        run_checked([cmake, "--install", build, "--prefix", prefix])
        tfe_dir = next(prefix.glob("lib*/cmake/tfe"))
    return Path(tfe_dir)


class CApi:
    """libtfe through ctypes: load a model file and read the status and message."""

    def __init__(self, path):
        import ctypes

        self.ct = ctypes
        self.lib = lib = ctypes.CDLL(str(path))
        vp = ctypes.c_void_p
        lib.tfe_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
        lib.tfe_model_load_memory.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(vp)]
        lib.tfe_model_free.argtypes = [vp]
        lib.tfe_model_num_classes.argtypes = [vp]
        lib.tfe_model_input_size.argtypes = [vp]
        lib.tfe_forward.argtypes = [vp, vp, ctypes.c_int, vp]
        i = ctypes.c_int
        lib.tfe_predict.argtypes = [vp, vp, i, i, i, i, vp]
        lib.tfe_last_error.restype = ctypes.c_char_p
        lib.tfe_status_string.restype = ctypes.c_char_p

    def load(self, path):
        """(status, message, model handle or None) for a model file path."""
        m = self.ct.c_void_p()
        status = self.lib.tfe_model_load(os.fsencode(path), self.ct.byref(m))
        return status, self._message(), m if status == 0 else None

    def load_memory(self, data):
        m = self.ct.c_void_p()
        status = self.lib.tfe_model_load_memory(data, len(data), self.ct.byref(m))
        return status, self._message(), m if status == 0 else None

    def _message(self):
        return self.lib.tfe_last_error().decode("utf-8", "replace")

    def free(self, m):
        self.lib.tfe_model_free(m)


@pytest.fixture(scope="session")
def c_api(tfe_cmake_dir):
    libs = sorted(tfe_cmake_dir.parent.parent.glob("libtfe.so*"))
    if not libs:
        pytest.skip(f"no libtfe.so next to {tfe_cmake_dir}")
    return CApi(libs[0])


@pytest.fixture
def torch():
    """PyTorch, for the reference-against-PyTorch tests of tests/test_<op>.py (helpers in
    torch_oracle.py); they skip with a reason where it is not installed."""
    return pytest.importorskip("torch", reason=torch_oracle.REASON)


@pytest.fixture(params=devices.DEVICES)
def device(request):
    """Runs the test once per device (tests/devices.py): its ``native`` and ``ref`` ops
    run there; the CUDA devices skip with a reason on a machine without a GPU."""
    with devices.running_on(request.param):
        yield request.param


@pytest.fixture(scope="session")
def emulated(tmp_path_factory):
    """The CUDA kernels under host emulation next to the CPU kernels (tests/emulated.py),
    built once per session; the test_emulated_* cases at the end of each op's test file use
    it. Skips when there is no C++ compiler."""
    import emulated as emulation

    return emulation.load(tmp_path_factory.mktemp("cuda-emulation"))
