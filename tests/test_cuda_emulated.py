"""The CUDA kernels (csrc/ops/*.cu) run under a host emulation and checked against the CPU kernels.

No GPU is needed: tests/cuda_emulation/convert.py rewrites the kernel launches of the real
.cu sources, emulate.h supplies the CUDA built-ins (threads of a block as fibers, barriers,
warp shuffles), and driver.cpp runs every op of csrc/ops/cuda_kernels.h next to its CPU kernel
on awkward small shapes, exact ops bit for bit, the others with the tolerances of
tests/tolerances.py. What this does and does not prove: tests/cuda_emulation/README.md.

Needs only a C++17 compiler (g++ or clang++; $CXX wins) and the repository sources, not the
built extension nor a CUDA toolkit.
"""
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import cpu_kernel_sources, isa_flags
from tolerances import TOLERANCES

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


ROOT = Path(__file__).resolve().parent.parent
EMU = ROOT / "tests" / "cuda_emulation"
CSRC = ROOT / "csrc"

# The CPU kernels the driver compares against, and what they need to link (conv2d's 3x3
# stride-1 layers can run the training Winograd, which packs its weights with the packed
# convolution of csrc/conv): every kernel source of the engine, found by listing its folders
# as CMake does, so a new op's kernel is picked up without a list to edit.
CPU_SOURCES = [p.relative_to(CSRC) for p in cpu_kernel_sources(ROOT)]
# Every kernel source; core/runtime.cu (the real allocator and stream) is replaced by
# runtime_emu.cpp.
CUDA_SOURCES = sorted(p.relative_to(CSRC) for p in CSRC.rglob("*.cu") if p.name != "runtime.cu")


def _compiler():
    for cxx in (os.environ.get("CXX"), "g++", "clang++", "c++"):
        if cxx and shutil.which(cxx):
            return cxx
    return None


def _host_has_fma():
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and " fma " in line + " " for line in flags.splitlines())


def _kernel_flags():
    # nvcc contracts a * b + c into an FMA by default (--fmad=true); letting the host compiler
    # contract too keeps the emulation honest about results that depend on it (the kernels
    # use __fmul_rn & co. where the CPU's bits must be reproduced).
    flags = ["-ffp-contract=fast", "-fno-strict-aliasing"]
    if _host_has_fma() and sys.platform.startswith("linux"):
        flags.append("-mfma")
    return flags


def _run(cmd, cwd):
    # nice: the build competes with whatever else the machine runs (CI has 2 cores)
    proc = subprocess.run(["nice", "-n", "5", *cmd] if shutil.which("nice") else cmd, cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-6000:]}")


def _build(cxx, out):
    subprocess.run([sys.executable, str(EMU / "convert.py"), str(CSRC), str(out / "cu")],
                   check=True, stdout=subprocess.DEVNULL)
    # The converted copies (out/cu, same tree as csrc) come before csrc itself, so an include
    # of a .cuh with kernel launches ("gemm/gemm.cuh") finds the converted one.
    base = [cxx, "-std=c++17", "-c", "-I", str(out / "cu"), "-I", str(CSRC), "-w"]
    emu_inc = ["-I", str(EMU / "include"), "-I", str(EMU)]
    jobs = []
    for src in CPU_SOURCES:
        name = "_".join(src.with_suffix("").parts)
        jobs.append(base + ["-O2", "-fopenmp", *isa_flags(src), str(CSRC / src),
                            "-o", str(out / f"cpu_{name}.o")])
    # -O1: the emulated kernels run small shapes; compile time dominates over run time.
    kflags = ["-O1", *_kernel_flags(), *emu_inc]
    for src in CUDA_SOURCES:
        name = "_".join(src.with_suffix("").parts)
        jobs.append(base + kflags + ["-x", "c++", str(out / "cu" / src),
                                     "-o", str(out / f"cuda_{name}.o")])
    jobs.append(base + kflags + ["-x", "c++", str(EMU / "runtime_emu.cpp"),
                                 "-o", str(out / "runtime_emu.o")])
    jobs.append(base + kflags + [str(EMU / "driver.cpp"), "-o", str(out / "driver.o")])
    # Largest first, so the long compiles do not end up last on one core.
    jobs.sort(key=lambda c: -Path(next(a for a in c if a.endswith((".cpp", ".cu")))).stat().st_size)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for f in [pool.submit(_run, job, out) for job in jobs]:
            f.result()
    exe = out / "driver"
    _run([cxx, "-fopenmp", *sorted(str(p) for p in out.glob("*.o")), "-o", str(exe)], out)
    return exe


def test_cuda_kernels_match_cpu_under_emulation(tmp_path):
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler found (set CXX, or install g++ or clang++)")
    exe = _build(cxx, tmp_path)
    args = [f"--tol={op}:{atol!r}:{rtol!r}" for op, (atol, rtol) in TOLERANCES.items()]
    proc = subprocess.run([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900)
    lines = proc.stdout.splitlines()
    failed = [ln for ln in lines if ln.startswith("FAIL")]
    passed = [ln for ln in lines if ln.startswith("PASS")]
    summary = lines[-1] if lines else "(no output)"
    assert not failed and proc.returncode == 0, (
        f"{len(failed)} of {len(failed) + len(passed)} emulated CUDA cases failed "
        f"(exit status {proc.returncode}; {summary}):\n" + "\n".join(failed[:40])
        + ("" if failed else "\n" + "\n".join(lines[-20:])))
    assert len(passed) >= 300, f"only {len(passed)} cases ran:\n{proc.stdout[-3000:]}"


def test_every_op_of_the_table_has_emulated_cases():
    # The op table (csrc/ops/ops.def) is what both kernel headers declare; a new op's CUDA
    # kernel must also get cases in driver.cpp (compared there with its CPU kernel).
    ops = re.findall(r"^TFE_OP\((\w+),", (CSRC / "ops" / "ops.def").read_text(), re.M)
    driver = (EMU / "driver.cpp").read_text()
    assert len(ops) > 20
    missing = [op for op in ops if f"tfe::cuda::{op}(" not in driver]
    assert not missing, f"no emulated case calls tfe::cuda::{missing[0]} (of {missing})"
