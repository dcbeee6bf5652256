"""Fixtures of the pytest-benchmark suite (benchmarks/bench_*.py).

Run:  python -m pytest benchmarks --benchmark-only
Threads: TFE_BENCH_THREADS (default 2) is applied with tfe.set_num_threads before any
benchmark runs and recorded in the machine info of the saved results.

The files are named bench_<op>.py (one per op stem, as the design asks) and are not
collected by the default test run (testpaths = ["tests"]); this conftest teaches pytest to
collect them when it is pointed at this folder.
"""

from __future__ import annotations

import fnmatch
import os

import numpy as np
import pytest


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


def pytest_benchmark_update_machine_info(config, machine_info):
    try:
        from tfe import _native
    except ImportError:
        return
    machine_info["tfe_threads"] = _threads()
    machine_info["tfe_gemm_kernel"] = _native.gemm_kernel()


@pytest.fixture(scope="session")
def native():
    """The native module with the benchmark thread count applied."""
    tfe = pytest.importorskip("tfe")
    tfe.set_num_threads(_threads())
    return tfe._native


@pytest.fixture(scope="session")
def threads(native) -> int:
    return native.get_num_threads()


@pytest.fixture(scope="session")
def fma_peak(native, threads) -> float:
    """Measured FMA peak (GFLOP/s) at the benchmark thread count: best of 3, since a
    measurement disturbed by other processes can only come out low."""
    return max(native.fma_peak_gflops(threads) for _ in range(3))


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
def throughput(threads):
    """throughput(benchmark, flops=.., nbytes=.., peak=..) after the benchmark ran: records
    the work per call and GFLOP/s or GB/s at the median time in benchmark.extra_info."""

    def record(benchmark, flops=None, nbytes=None, peak=None, **info):
        benchmark.extra_info["threads"] = threads
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
