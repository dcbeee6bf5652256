"""The CUDA kernels under host emulation, next to the CPU kernels, callable from the op tests.

No GPU is needed: tests/cuda_emulation/convert.py rewrites the kernel launches of the real
csrc .cu sources, emulate.h supplies the CUDA built-ins (threads of a block as fibers,
barriers, warp shuffles), and the result is linked with the CPU kernels and
tests/cuda_emulation/exports.cpp into one shared library, built once per test session (the
``emulated`` fixture of conftest.py; it skips when there is no C++ compiler). What this does
and does not prove: tests/cuda_emulation/README.md.

Each op test file ends with a section of ``test_emulated_*`` cases that run an op's CUDA
kernel and its CPU kernel on the same inputs and compare them:

    emulated.cpu.<op>(y, x, N, C)                   # the CPU kernel, on NumPy arrays
    yd = emulated.garbage(N * C)                    # an assigned output
    emulated.cuda.<op>(yd, emulated.misaligned(x), N, C)
    emulated.assert_close(yd, y, "<op>", "y")

Both take the arguments of the op's ``kernel_params`` in csrc/ops/ops.def (parsed here, so a
new op needs no edit of this file): NumPy arrays for pointers (None for nullptr, a list for
an array of pointers), Python numbers for scalars. A CUDA call copies every array into its
own device buffer with guards on both sides (16 elements of a 32-bit word that is a NaN as
float and differs from buffer to buffer: an out-of-bounds read yields NaN, an out-of-bounds
write changes a guard), optionally one element off 16-byte alignment (``misaligned``, for
the float4 paths and their scalar fallbacks). After the call it fails the test, naming the
op and the parameter, if the wrapper threw, the emulation reported a fault, a CUDA error was
left pending, a guard changed, or an input (a ``const`` pointer) was written; then it copies
the outputs back into the caller's arrays.
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from conftest import cpu_kernel_sources, cxx_compiler, isa_flags
from tolerances import TOLERANCES

ROOT = Path(__file__).resolve().parent.parent
EMU = ROOT / "tests" / "cuda_emulation"
CSRC = ROOT / "csrc"
OPS_DEF = CSRC / "ops" / "ops.def"

# ---- building the library -------------------------------------------------------------------
# The CPU kernels the CUDA kernels are compared with, and what they need to link (conv2d's
# 3x3 stride-1 layers can run the training Winograd, which packs its weights with the packed
# convolution of csrc/conv): every kernel source of the engine, found by listing its folders
# as CMake does, so a new op's kernel is picked up without a list to edit.
CPU_SOURCES = [p.relative_to(CSRC) for p in cpu_kernel_sources(ROOT)]
# Every CUDA source; core/runtime.cu (the real allocator and stream) is replaced by
# runtime_emu.cpp.
CUDA_SOURCES = sorted(p.relative_to(CSRC) for p in CSRC.rglob("*.cu") if p.name != "runtime.cu")


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


def build(cxx, out):
    """Compile the library into the folder `out`; returns its path."""
    out = Path(out)
    subprocess.run([sys.executable, str(EMU / "convert.py"), str(CSRC), str(out / "cu")],
                   check=True, stdout=subprocess.DEVNULL)
    # The converted copies (out/cu, same tree as csrc) come before csrc itself, so an include
    # of a .cuh with kernel launches ("gemm/gemm.cuh") finds the converted one.
    base = [cxx, "-std=c++17", "-fPIC", "-c", "-I", str(out / "cu"), "-I", str(CSRC), "-w"]
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
    jobs.append(base + kflags + [str(EMU / "exports.cpp"), "-o", str(out / "exports.o")])
    # Largest first, so the long compiles do not end up last on one core.
    jobs.sort(key=lambda c: -Path(next(a for a in c if a.endswith((".cpp", ".cu")))).stat().st_size)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for f in [pool.submit(_run, job, out) for job in jobs]:
            f.result()
    lib = out / "libtfe_emulated.so"
    # -Bsymbolic: the library's calls to its own functions stay inside it, even with tfe's
    # extension (the same tfe::cpu symbols) loaded in the same process.
    link = ["-Wl,-Bsymbolic"] if sys.platform.startswith("linux") else []
    _run([cxx, "-shared", "-fopenmp", *link, *sorted(str(p) for p in out.glob("*.o")),
          "-o", str(lib)], out)
    return lib


# ---- the kernel signatures of ops.def ---------------------------------------------------------
SCALARS = {"int": ctypes.c_int, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64,
           "uint64_t": ctypes.c_uint64, "size_t": ctypes.c_size_t, "float": ctypes.c_float,
           "double": ctypes.c_double, "bool": ctypes.c_bool}
ELEMENTS = {"float": np.float32, "double": np.float64, "int": np.intc, "int32_t": np.int32,
            "int64_t": np.int64, "uint8_t": np.uint8, "uint64_t": np.uint64}
# T* / const T* (one array), T* const* / const T* const* (a host array of pointers to arrays)
_POINTER = re.compile(r"^(const )?(\w+)\*(?:(?:const)?(\*))?$")


class Param:
    """One parameter of a kernel: kind "scalar" (ctype), "array" (dtype; writes: not const)
    or "arrays" (an array of pointers to arrays of dtype)."""

    def __init__(self, op, ctype_text, name):
        self.name = name
        self.text = f"{ctype_text} {name}"
        t = re.sub(r"\s*\*\s*", "*", ctype_text.strip())
        t = re.sub(r"\s+", " ", t)
        m = _POINTER.match(t)
        if t in SCALARS:
            self.kind, self.ctype = "scalar", SCALARS[t]
        elif m and m.group(2) in ELEMENTS:
            self.kind = "arrays" if m.group(3) else "array"
            self.dtype = np.dtype(ELEMENTS[m.group(2)])
            self.writes = not m.group(1)
            self.ctype = ctypes.c_void_p
        else:
            raise ValueError(f"ops.def: {op}: parameter '{self.text}': no ctypes mapping for "
                             f"'{ctype_text}' (add it to SCALARS or ELEMENTS in tests/emulated.py)")


def kernel_signatures(path=OPS_DEF):
    """{op name: [Param, ...]} from the kernel_params column of the op table, in order."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", Path(path).read_text(), flags=re.S)
    ops = {}
    for m in re.finditer(r"\bTFE_OP\(\s*(\w+)\s*,\s*\(([^()]*)\)", text):
        op, params = m.group(1), m.group(2)
        ops[op] = [Param(op, *re.match(r"^(.*?)(\w+)$", p.strip(), re.S).groups())
                   for p in params.split(",") if p.strip()]
    return ops


# ---- device buffers -----------------------------------------------------------------------------
class Misaligned:
    """An array passed to a CUDA kernel `shift` elements off 16-byte alignment."""

    def __init__(self, array, shift):
        self.array, self.shift = array, int(shift)


def misaligned(array, shift=1):
    """`array` as a CUDA argument placed `shift` elements (0: aligned) past a 16-byte boundary,
    so a float pointer is 4 * shift bytes off float4 alignment. The CPU side takes it as is."""
    return Misaligned(array, shift)


class DeviceBuffer:
    """A copy of an array between two guards, `shift` elements past a 64-byte boundary."""

    GUARD = 16  # elements on each side
    serial = 0

    def __init__(self, array, shift, what):
        DeviceBuffer.serial += 1
        word = 0x7FC00000 | (((DeviceBuffer.serial * 2654435761) & 0xFFFFFFFF) >> 10)
        pattern = np.array([word], "<u4").view(np.uint8)
        self.array, self.what = array, what
        size = array.itemsize
        self.lo = (self.GUARD + shift) * size
        self.hi = self.lo + array.nbytes
        total = self.hi + self.GUARD * size
        raw = np.empty(total + 64, np.uint8)
        start = -raw.ctypes.data % 64
        self.mem = raw[start:start + total]
        self.fill = np.resize(pattern, total)
        self.mem[:] = self.fill
        self.mem[self.lo:self.hi] = array.reshape(-1).view(np.uint8)
        self.ptr = self.mem.ctypes.data + self.lo

    def check_guards(self):
        for side, got, want in (("before", self.mem[:self.lo], self.fill[:self.lo]),
                                ("after", self.mem[self.hi:], self.fill[self.hi:])):
            bad = np.flatnonzero(got != want)
            if bad.size:
                size = self.array.itemsize
                nearest = ((bad[-1] - self.lo) // size if side == "before"
                           else self.array.size + bad[0] // size)
                name = self.what.rsplit(": ", 1)[-1]
                raise AssertionError(
                    f"{self.what}: written out of bounds: {bad.size} guard bytes {side} the "
                    f"buffer ({self.array.size} elements) changed, the nearest at "
                    f"{name}[{nearest}]")

    def data(self):
        return self.mem[self.lo:self.hi].view(self.array.dtype).reshape(self.array.shape)


def _as_array(value, param, what):
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what}: expected a NumPy array of {param.dtype} for '{param.text}', "
                        f"got {type(value).__name__}")
    if value.dtype != param.dtype or not value.flags.c_contiguous:
        raise TypeError(f"{what}: expected a C-contiguous {param.dtype} array for '{param.text}', "
                        f"got {value.dtype}{'' if value.flags.c_contiguous else ' (strided)'}")
    if param.writes and not value.flags.writeable:
        raise TypeError(f"{what}: '{param.text}' is written: the array must be writeable")
    return value


class Kernels:
    """The kernels of one side (cpu or cuda): ``kernels.<op>(*args)``."""

    def __init__(self, lib, side, table, signatures):
        self._lib, self._side, self._sigs = lib, side, signatures
        self._fns = {op: ctypes.CFUNCTYPE(None, *(p.ctype for p in signatures[op]))(address)
                     for op, address in table.items()}

    def __dir__(self):
        return sorted(self._fns)

    def __getattr__(self, op):
        if op.startswith("_") or op not in self.__dict__.get("_fns", {}):
            raise AttributeError(f"no op {op!r} in csrc/ops/ops.def")
        return lambda *args: self._call(op, args)

    def _check_report(self, op):
        report = self._lib.tfe_emu_take_report().decode("utf-8", "replace").strip()
        if report:
            raise AssertionError(f"{self._side} {op}: " + report.replace("\n", "\n  "))

    def _call(self, op, args):
        params = self._sigs[op]
        if len(args) != len(params):
            raise TypeError(f"{self._side} {op}: {len(args)} arguments for the "
                            f"{len(params)} of ops.def: ({', '.join(p.text for p in params)})")
        device = self._side == "cuda"
        buffers, values, keep = [], [], []
        for p, a in zip(params, args):
            what = f"{self._side} {op}: {p.name}"
            if p.kind == "scalar":
                convert = {ctypes.c_float: float, ctypes.c_double: float, ctypes.c_bool: bool}
                values.append(convert.get(p.ctype, int)(a))
                continue
            entries = a if p.kind == "arrays" else [a]
            if p.kind == "arrays" and not isinstance(a, (list, tuple)):
                raise TypeError(f"{what}: expected a list of arrays for '{p.text}'")
            pointers = []
            for j, e in enumerate(entries):
                name = f"{what}[{j}]" if p.kind == "arrays" else what
                shift = 0
                if isinstance(e, Misaligned):
                    e, shift = e.array, e.shift
                if e is None:
                    pointers.append(None)
                    continue
                e = _as_array(e, p, name)
                if device:
                    b = DeviceBuffer(e, shift, name)
                    b.writes = p.writes
                    buffers.append(b)
                    pointers.append(b.ptr)
                else:
                    pointers.append(e.ctypes.data)
            if p.kind == "arrays":
                table = (ctypes.c_void_p * max(1, len(pointers)))(*pointers)
                keep.append(table)
                values.append(ctypes.cast(table, ctypes.c_void_p))
            else:
                values.append(pointers[0])
        self._fns[op](*values)
        self._check_report(op)
        for b in buffers:
            b.check_guards()
        for b in buffers:
            if b.writes:
                b.array[...] = b.data()
            elif not np.array_equal(b.mem[b.lo:b.hi], b.array.reshape(-1).view(np.uint8)):
                raise AssertionError(f"{b.what}: an input ('const') was written")


class Emulation:
    """The loaded library: ``cpu.<op>``, ``cuda.<op>``, and the helpers of the op tests."""

    def __init__(self, path):
        self.path = Path(path)
        self.lib = lib = ctypes.CDLL(str(path))
        lib.tfe_emu_ops.restype = ctypes.c_void_p
        lib.tfe_emu_ops.argtypes = [ctypes.POINTER(ctypes.c_int)]
        lib.tfe_emu_take_report.restype = ctypes.c_char_p
        lib.tfe_emu_launches.restype = ctypes.c_longlong
        lib.tfe_emu_set_cpu_threads.argtypes = [ctypes.c_int]

        class Entry(ctypes.Structure):
            _fields_ = [("name", ctypes.c_char_p), ("cpu", ctypes.c_void_p),
                        ("cuda", ctypes.c_void_p)]

        count = ctypes.c_int()
        entries = ctypes.cast(lib.tfe_emu_ops(ctypes.byref(count)), ctypes.POINTER(Entry))
        entries = [entries[i] for i in range(count.value)]
        self.ops = kernel_signatures()
        names = [e.name.decode() for e in entries]
        if sorted(names) != sorted(self.ops):
            raise AssertionError(f"the library exports {names}, ops.def parses as {list(self.ops)}")
        self.cpu = Kernels(lib, "cpu", {e.name.decode(): e.cpu for e in entries}, self.ops)
        self.cuda = Kernels(lib, "cuda", {e.name.decode(): e.cuda for e in entries}, self.ops)
        self.cuda.advance_dropout_offset = self._advance_dropout_offset
        self.dropout_offset = 0  # advance_dropout_offset calls so far (a device-side counter)
        lib.tfe_emu_set_cpu_threads(1)

    def _advance_dropout_offset(self):
        """The per-replay counter of captured graphs: the CUDA dropout kernels draw with
        seed + dropout_offset from now on (the CPU kernels take the shifted seed)."""
        self.lib.tfe_emu_advance_dropout_offset()
        self.cuda._check_report("advance_dropout_offset")
        self.dropout_offset += 1

    def launches(self):
        """Emulated kernel launches so far."""
        return self.lib.tfe_emu_launches()

    # The helpers of the test_emulated_* cases, here so that they need no import.
    misaligned = staticmethod(misaligned)

    @staticmethod
    def garbage(n, dtype=np.float32):
        """An assigned output: n elements (or a shape) of 0x7F bytes (3.4e38 as float)."""
        shape = (n,) if np.isscalar(n) else tuple(n)
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.full(count, 0x7F, np.uint8).view(dtype).reshape(shape)

    @staticmethod
    def uniform(rng, n, low=-1.0, high=1.0):
        """n float32 values uniform in [low, high)."""
        return rng.uniform(low, high, n).astype(np.float32)

    @staticmethod
    def assert_exact(cuda, cpu, what):
        """Bit for bit."""
        cuda, cpu = np.asarray(cuda), np.asarray(cpu)
        assert cuda.shape == cpu.shape and cuda.dtype == cpu.dtype, \
            f"{what}: cuda {cuda.dtype}{cuda.shape} vs cpu {cpu.dtype}{cpu.shape}"
        bits = np.dtype(f"u{cpu.itemsize}")
        bad = np.flatnonzero(cuda.reshape(-1).view(bits) != cpu.reshape(-1).view(bits))
        if bad.size:
            i = bad[0]
            raise AssertionError(
                f"{what}: {bad.size} of {cpu.size} elements differ (must be bit-exact); first "
                f"at {i}: cuda {_show(cuda.reshape(-1)[i])} cpu {_show(cpu.reshape(-1)[i])}")

    @staticmethod
    def assert_close(cuda, cpu, op, what, unit=None):
        """|cuda - cpu| <= atol * S + rtol * |cpu| with (atol, rtol) of tolerances.py. The
        table assumes O(1) quantities; S carries it to tensors of any scale: S = max |cpu| over
        the tensor or, where given, a per-element unit (bn_dx_unit)."""
        atol, rtol = TOLERANCES[op]
        a = np.asarray(cuda, np.float64).reshape(-1)
        r = np.asarray(cpu, np.float64).reshape(-1)
        assert a.shape == r.shape, f"{what}: cuda {a.shape} vs cpu {r.shape} elements"
        if not np.all(np.isfinite(r)):
            raise AssertionError(f"{op} {what}: the CPU result has a non-finite value at "
                                 f"{np.flatnonzero(~np.isfinite(r))[0]}")
        scale = (np.abs(r).max() if r.size else 0.0) if unit is None \
            else np.asarray(unit, np.float64).reshape(-1)
        err = np.abs(a - r)
        bound = atol * scale + rtol * np.abs(r)
        bad = ~(err <= bound)  # NaN in cuda fails
        if bad.any():
            excess = np.where(bad, np.nan_to_num(err - bound, nan=np.inf), -np.inf)
            i = int(np.argmax(excess))
            s = scale if unit is None else scale[i]
            raise AssertionError(
                f"{op} {what}: {int(bad.sum())} of {r.size} elements beyond atol={atol:g}*{s:.3g} "
                f"rtol={rtol:g}; worst at {i}: cuda {a[i]:.9g} cpu {r[i]:.9g}")

    @staticmethod
    def bn_dx_unit(dy, gamma, invstd, N, C, HW):
        """|gamma[c] * invstd[c]| * max |dy| over channel c, per element of x[N, C, HW]: the
        scale of a batch-norm input gradient's rounding error, however small the gradient is
        (it is a cancellation; helpers.bn_dx_unit is the power-of-two version)."""
        dy = np.abs(np.asarray(dy, np.float64).reshape(N, C, HW))
        m = dy.max(axis=(0, 2))
        u = np.abs(np.asarray(gamma, np.float64) * np.asarray(invstd, np.float64)) * m
        return np.broadcast_to(u[None, :, None], (N, C, HW)).reshape(-1)


def _show(v):
    if isinstance(v, np.floating):
        return f"{float(v):.9g} (0x{int(np.asarray(v).view(f'u{v.itemsize}')):0{2 * v.itemsize}x})"
    return str(int(v))


def load(folder):
    """Build the library into `folder` and load it; skips the test without a compiler. A
    failed build fails every test that uses it with its first error and the log's path."""
    import pytest

    cxx = cxx_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler found (set CXX, or install g++ or clang++)")
    try:
        lib = build(cxx, folder)
    except AssertionError as e:
        error = str(e)
    else:
        return Emulation(lib)
    log = Path(folder) / "build.log"
    log.write_text(error)
    first = next((ln for ln in error.splitlines() if "error" in ln), error.splitlines()[0])
    pytest.fail(f"the CUDA emulation library did not build: {first.strip()}\n"
                f"(the compiler's output: {log})", pytrace=False)
