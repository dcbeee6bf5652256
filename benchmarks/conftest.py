"""Fixtures of the pytest-benchmark suite (benchmarks/bench_*.py).

Run:  python -m pytest benchmarks --benchmark-only
Threads: TFE_BENCH_THREADS (default 2) is applied with tfe.set_num_threads before any
benchmark runs and recorded in the machine info of the saved results.
Devices: every benchmark that takes ``native`` runs on the CPU and on the GPU (``cuda``,
skipped with a reason without one); ``-k cpu`` or ``-k cuda`` picks one.

The files are named bench_<op>.py (one per op stem, as the design asks) and are not
collected by the default test run (testpaths = ["tests"]); this conftest teaches pytest to
collect them when it is pointed at this folder. They also hold compare_torch.py's cases
(torch_cases), so they import without pytest-benchmark; without it, every benchmark skips.
"""

from __future__ import annotations

import fnmatch
import os

import numpy as np
import pytest


try:
    import pytest_benchmark  # noqa: F401  (its plugin provides the benchmark fixture)
except ImportError:
    @pytest.fixture
    def benchmark():
        pytest.skip("pytest-benchmark is not installed (pip install pytest-benchmark)")


def _threads() -> int:
    raw = os.environ.get("TFE_BENCH_THREADS", "2")
    try:
        n = int(raw)
    except ValueError:
        raise pytest.UsageError(f"TFE_BENCH_THREADS must be a positive integer, got {raw!r}")
    if n < 1:
        raise pytest.UsageError(f"TFE_BENCH_THREADS must be >= 1, got {n}")
    return n


def pytest_collect_file(file_path, parent):
    # bench_*.py are modules of tests (functions test_*) that the default python_files
    # pattern does not match; collect them here unless the ini already does.
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if any(fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("python_files")):
        return None  # the python plugin collects it already
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: the python plugin collects it too
    return pytest.Module.from_parent(parent, path=file_path)


@pytest.hookimpl(optionalhook=True)  # a pytest-benchmark hook: unknown without it
def pytest_benchmark_update_machine_info(config, machine_info):
    try:
        from tfe import _native
    except ImportError:
        return
    machine_info["tfe_threads"] = _threads()
    machine_info["tfe_gemm_kernel"] = _native.gemm_kernel()


@pytest.fixture(scope="session", params=["cpu", "cuda"])
def device(request) -> str:
    """Every benchmark that takes ``native`` runs once per device; cuda skips with a reason
    on a machine without a GPU."""
    tfe = pytest.importorskip("tfe")
    if request.param == "cuda" and not tfe.cuda.is_available():
        pytest.skip(f"needs a CUDA GPU: {tfe.cuda.unavailable_reason()}")
    return request.param


@pytest.fixture
def native(device):
    """The native module on the benchmark's device, with the benchmark thread count applied
    (for the GPU: the ops of the table run there, see _OnGpu)."""
    tfe = pytest.importorskip("tfe")
    tfe.set_num_threads(_threads())
    return tfe._native if device == "cpu" else _OnGpu(tfe)


class _OnGpu:
    """tfe._native with the ops of the table (tfe._native.ops(), i.e. csrc/ops/ops.def) run on
    the GPU. NumPy array arguments are copied to the device on first use and the copy is
    reused by later calls, so the transfer is not timed; each call waits for the GPU
    (tfe.cuda.synchronize), so the time is the kernels', launches included. A function
    outside the table called with arrays has no GPU version: the benchmark skips."""

    def __init__(self, tfe):
        self._tfe, self._ops, self._copies = tfe, frozenset(tfe._native.ops()), {}

    def __getattr__(self, name):
        fn = getattr(self._tfe._native, name)
        if not callable(fn) or isinstance(fn, type):
            return fn

        def call(*args, **kwargs):
            args = [self._to_device(a) for a in args]
            kwargs = {k: self._to_device(v) for k, v in kwargs.items()}
            if name not in self._ops:
                if any(isinstance(a, self._tfe._native.Tensor) for a in [*args, *kwargs.values()]):
                    pytest.skip(f"{name} runs on the CPU only")
                return fn(*args, **kwargs)
            result = fn(*args, **kwargs)
            self._tfe.cuda.synchronize()
            return result

        return call

    def _to_device(self, a):
        if isinstance(a, (list, tuple)):
            return type(a)(self._to_device(x) for x in a)
        if not isinstance(a, np.ndarray):
            return a
        hit = self._copies.get(id(a))
        if hit is None or hit[0] is not a:  # the array itself is kept, so ids stay unique
            on_gpu = self._tfe._native.as_tensor(np.ascontiguousarray(a)).to("cuda")
            hit = self._copies[id(a)] = (a, on_gpu)
        return hit[1]


@pytest.fixture
def threads(native) -> int:
    return native.get_num_threads()


@pytest.fixture(scope="session")
def fma_peak() -> float:
    """Measured FMA peak (GFLOP/s) of the CPU at the benchmark thread count: best of 3,
    since a measurement disturbed by other processes can only come out low."""
    tfe = pytest.importorskip("tfe")
    tfe.set_num_threads(_threads())
    return max(tfe._native.fma_peak_gflops(_threads()) for _ in range(3))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def randn(rng):
    """randn(*shape) -> contiguous float32 standard normals."""

    def make(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    return make


@pytest.fixture
def throughput(threads, device):
    """throughput(benchmark, flops=.., nbytes=.., peak=..) after the benchmark ran: records
    the device, the work per call and GFLOP/s or GB/s at the median time in
    benchmark.extra_info (peak, the CPU's FMA peak, only for the CPU)."""

    def record(benchmark, flops=None, nbytes=None, peak=None, **info):
        benchmark.extra_info["device"] = device
        benchmark.extra_info["threads"] = threads
        if device != "cpu":
            peak = None
        benchmark.extra_info.update(info)
        stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
        median = stats.stats.median if stats is not None else None
        if flops is not None:
            benchmark.extra_info["flops"] = int(flops)
            if median:
                gflops = flops / median / 1e9
                benchmark.extra_info["gflops"] = round(gflops, 2)
                if peak:
                    benchmark.extra_info["fma_peak_gflops"] = round(peak, 1)
                    benchmark.extra_info["pct_of_fma_peak"] = round(100 * gflops / peak, 1)
        if nbytes is not None:
            benchmark.extra_info["bytes"] = int(nbytes)
            if median:
                benchmark.extra_info["gbps"] = round(nbytes / median / 1e9, 2)

    return record
