#!/usr/bin/env python
"""tfe vs PyTorch (CPU, eager) side by side, one process, same thread count.

Every op of a training step, one training step's worth of it (forward + backward where it
has a backward) on the shapes of the paper's networks (shapes.py), against the same
computation in PyTorch: the cases come from torch_cases() of each benchmarks/bench_<op>.py,
in their TORCH_ORDER (the convolutions of ResNet18 and DeepID first: --only group conv; the
other ops: group ops). Then tfe's GEMM core against torch.mm with the measured FMA peak of
the machine.

Method:
  * inputs are created once; torch gets the same arrays (torch.from_numpy, no copy);
  * before timing, each case computes both sides once and prints the largest difference of
    every output (max |tfe - torch| and the same divided by max |torch|): a row whose
    outputs disagree is marked MISMATCH and the script exits 3, so nobody compares two
    different computations;
  * each measurement runs a case `inner` times in a loop (inner chosen so a measurement
    lasts >= --min-time), tfe and torch measurements alternate (the order flips every
    repetition) so that noise on a shared machine hits both alike; the figure is the
    median over --repeat measurements;
  * tfe and torch each bring their own OpenMP runtime; a short sleep (--settle) before
    every measurement lets the other side's spinning worker threads go idle.
ratio = torch time / tfe time: above 1 tfe is faster.

Usage:
  python benchmarks/compare_torch.py [--threads 2] [--batch 128]
      [--repeat 7] [--min-time 0.05] [--only conv,ops,gemm] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402

REL_TOL = 1e-3  # max |tfe - torch| / max |torch| above this marks a row MISMATCH


# ---------------------------------------------------------------------------------------------
# cases


class Case:
    """One comparison: a tfe step, the equivalent torch step, and how to check them."""

    def __init__(self, section, name, label, count, work, unit, tfe_fn, torch_fn, check):
        self.section, self.name, self.label, self.count = section, name, label, count
        self.work, self.unit = work, unit  # FLOPs ("GFLOP/s") or bytes ("GB/s") per step
        self.tfe_fn, self.torch_fn = tfe_fn, torch_fn
        self.check = check  # () -> list of (output name, tfe array, torch array)


def _np(t):
    import torch

    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return np.asarray(t)


class Setting:
    """What each bench_<op>.py's torch_cases(setting) builds its cases from: tfe's native
    module and torch, the batch size, the random generator every case draws its inputs from
    (one, in TORCH_ORDER: the inputs do not depend on how the cases are spread over files),
    and helpers."""

    def __init__(self, native, torch, batch, rng):
        self.native, self.torch, self.batch, self.rng = native, torch, batch, rng
        self.F, self.grad = torch.nn.functional, torch.autograd.grad
        self.case = Case

    def randn(self, *shape, scale=1.0):
        """float32 normal samples."""
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def leaf(self, a, requires_grad=True):
        """A torch tensor sharing a's memory (torch.from_numpy), a leaf of autograd."""
        return self.torch.from_numpy(a).requires_grad_(requires_grad)

    def bn_state(self, c):
        """(gamma, beta, running_mean, running_var) of a batch norm over c channels."""
        return (1 + 0.1 * self.randn(c), 0.1 * self.randn(c), np.zeros(c, np.float32),
                np.ones(c, np.float32))


def bench_modules():
    """The benchmarks/bench_<op>.py modules that define torch_cases, in their TORCH_ORDER.

    Each also defines TORCH_SECTIONS, its (section, title) pairs in output order, and may
    define TORCH_ONLY, the --only group its cases belong to (default: ops)."""
    here = os.path.dirname(os.path.abspath(__file__))
    modules = []
    for path in sorted(glob.glob(os.path.join(here, "bench_*.py"))):
        module = importlib.import_module(os.path.splitext(os.path.basename(path))[0])
        if hasattr(module, "torch_cases"):
            modules.append(module)
    return sorted(modules, key=lambda m: m.TORCH_ORDER)


def make_cases(native, torch, batch, rng, sections, modules):
    """The cases of the modules whose --only group is in sections."""
    setting = Setting(native, torch, batch, rng)
    cases = []
    for module in modules:
        if getattr(module, "TORCH_ONLY", "ops") in sections:
            cases += module.torch_cases(setting)
    return cases


# ---------------------------------------------------------------------------------------------
# timing


def _settle(seconds):
    if seconds > 0:
        time.sleep(seconds)


def _time_once(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def _calibrate(fn, min_time):
    fn()  # warm-up: first-touch allocations, thread pools, caches
    t = _time_once(fn, 1)
    return max(1, min(100_000, math.ceil(min_time / max(t, 1e-7))))


def time_pair(tfe_fn, torch_fn, repeat, min_time, settle):
    """Alternating measurements; returns (tfe times, torch times) in seconds, per call."""
    inner_a, inner_b = _calibrate(tfe_fn, min_time), _calibrate(torch_fn, min_time)
    ta, tb = [], []
    for r in range(repeat):
        order = ((tfe_fn, inner_a, ta), (torch_fn, inner_b, tb))
        for fn, inner, out in (order if r % 2 == 0 else order[::-1]):
            _settle(settle)
            out.append(_time_once(fn, inner))
    return ta, tb


def check_outputs(case):
    """[(output, max abs err, err / max |torch|)] and whether all are within REL_TOL."""
    rows, ok = [], True
    for name, got, want in case.check():
        got, want = _np(got).astype(np.float64), _np(want).astype(np.float64)
        if got.shape != want.shape:
            rows.append((name, float("inf"), float("inf")))
            ok = False
            continue
        err = float(np.max(np.abs(got - want))) if got.size else 0.0
        rel = err / max(float(np.max(np.abs(want))), 1e-30)
        ok &= rel <= REL_TOL and math.isfinite(err)
        rows.append((name, err, rel))
    return rows, ok


# ---------------------------------------------------------------------------------------------
# reporting


def _omp_runtimes():
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if "/" in line else ""
                base = os.path.basename(path)
                if any(k in base for k in ("libgomp", "libiomp", "libomp")):
                    libs.add(path)
    except OSError:
        pass
    return sorted(libs)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt_ms(s):
    return f"{s * 1e3:10.3f}"


def run_section(title, cases, args, results, mismatches):
    if not cases:
        return
    print(f"\n== {title} (batch {args.batch}, {args.threads} threads; median of {args.repeat}) ==")
    print(f"{'case':24s} {'shape':28s} {'count':>5s} {'tfe ms':>10s} {'torch ms':>10s} "
          f"{'torch/tfe':>9s} {'tfe rate':>14s}  max err (abs / rel to max|torch|)")
    tot_tfe = tot_torch = 0.0
    weighted = 0
    for c in cases:
        checks, ok = check_outputs(c)
        ta, tb = time_pair(c.tfe_fn, c.torch_fn, args.repeat, args.min_time, args.settle)
        mt, mp = statistics.median(ta), statistics.median(tb)
        rate = c.work / mt / 1e9
        worst = max(checks, key=lambda r: r[2])
        flag = "" if ok else "  MISMATCH"
        print(f"{c.name:24s} {c.label:28s} {c.count:5d} {_fmt_ms(mt)} {_fmt_ms(mp)} "
              f"{mp / mt:9.2f} {rate:8.1f} {c.unit:7s} "
              f"{worst[0]}: {worst[1]:.2e} / {worst[2]:.1e}{flag}")
        if not ok:
            for name, err, rel in checks:
                print(f"{'':24s}   {name}: max abs err {err:.3e}, rel {rel:.3e}")
            mismatches.append(f"{title}/{c.name}")
        if c.count:
            tot_tfe += c.count * mt
            tot_torch += c.count * mp
            weighted += 1
        results.append(dict(
            section=c.section, name=c.name, shape=c.label, count=c.count,
            tfe_ms=mt * 1e3, torch_ms=mp * 1e3, ratio_torch_over_tfe=mp / mt,
            tfe_min_ms=min(ta) * 1e3, torch_min_ms=min(tb) * 1e3,
            tfe_ms_all=[t * 1e3 for t in ta], torch_ms_all=[t * 1e3 for t in tb],
            work=c.work, unit=c.unit, tfe_rate=rate, torch_rate=c.work / mp / 1e9,
            check={n: {"max_abs_err": e, "rel_err": r} for n, e, r in checks}, check_ok=ok))
    if weighted > 1:
        print(f"{'TOTAL (x count)':24s} {'':28s} {'':5s} {_fmt_ms(tot_tfe)} {_fmt_ms(tot_torch)} "
              f"{tot_torch / tot_tfe:9.2f}")
        results.append(dict(section=cases[0].section, name="TOTAL_weighted_by_count",
                            tfe_ms=tot_tfe * 1e3, torch_ms=tot_torch * 1e3,
                            ratio_torch_over_tfe=tot_torch / tot_tfe))


def gemm_section(native, torch, args, rng, results, mismatches):
    # best of 3: a measurement disturbed by other processes can only come out low
    peaks = {t: max(native.fma_peak_gflops(t) for _ in range(3))
             for t in sorted({1, 2, args.threads})}
    peak = peaks[args.threads]
    print(f"\n== GEMM core: micro-kernel '{native.gemm_kernel()}' ==")
    for t, p in peaks.items():
        print(f"FMA peak, {t} thread{'s' if t > 1 else ''}: {p:8.1f} GFLOP/s "
              "(best of 3 native.fma_peak_gflops)")
    overhead = []
    one = np.ones((1, 1), np.float32)
    for _ in range(5):
        overhead.append(_time_once(lambda: native.sgemm(one, one), 2000))
    print(f"binding call overhead (1x1x1 sgemm): {statistics.median(overhead) * 1e6:.2f} us "
          "(included in every tfe figure below)")
    cases = [("square", *shapes.GEMM_SQUARE, False, False)] + shapes.conv_gemm_shapes()
    print(f"{'gemm':34s} {'M':>5s} {'N':>5s} {'K':>5s} {'tA':>2s}{'tB':>3s} {'tfe ms':>10s} "
          f"{'torch ms':>10s} {'torch/tfe':>9s} {'GFLOP/s':>8s} {'% peak':>7s}  rel err")
    for name, m, n, k, ta, tb in cases:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        tA, tB = torch.from_numpy(a), torch.from_numpy(b)
        opA, opB = (tA.t() if ta else tA), (tB.t() if tb else tB)
        ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
        got = np.asarray(native.sgemm(a, b, ta, tb), np.float64)
        rel = float(np.max(np.abs(got - ref))) / float(np.max(np.abs(ref)))
        ok = rel <= REL_TOL
        if not ok:
            mismatches.append(f"gemm/{name}")
        t_tfe, t_torch = time_pair(lambda: native.sgemm(a, b, ta, tb),
                                   lambda: torch.mm(opA, opB), args.repeat, args.min_time,
                                   args.settle)
        mt, mp = statistics.median(t_tfe), statistics.median(t_torch)
        gf = 2 * m * n * k / mt / 1e9
        print(f"{name:34s} {m:5d} {n:5d} {k:5d} {'T' if ta else 'N':>2s}{'T' if tb else 'N':>3s} "
              f"{_fmt_ms(mt)} {_fmt_ms(mp)} {mp / mt:9.2f} {gf:8.1f} {100 * gf / peak:6.1f}%"
              f"  {rel:.1e}{'' if ok else '  MISMATCH'}")
        results.append(dict(section="gemm", name=name, m=m, n=n, k=k, trans_a=ta, trans_b=tb,
                            tfe_ms=mt * 1e3, torch_ms=mp * 1e3, ratio_torch_over_tfe=mp / mt,
                            tfe_gflops=gf, pct_of_fma_peak=100 * gf / peak, rel_err=rel,
                            check_ok=ok))
    return {str(t): p for t, p in peaks.items()}


def write_json_atomic(path, obj):
    path = os.path.abspath(path)
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="threads for tfe and torch (2)")
    ap.add_argument("--batch", type=int, default=128, help="batch size (128)")
    ap.add_argument("--repeat", type=int, default=7, help="measurements per side (7)")
    ap.add_argument("--min-time", type=float, default=0.05,
                    help="seconds one measurement lasts at least (0.05)")
    ap.add_argument("--settle", type=float, default=0.003,
                    help="idle seconds before each measurement (0.003)")
    ap.add_argument("--only", default="conv,ops,gemm",
                    help="comma-separated sections among conv, ops, gemm")
    ap.add_argument("--json", metavar="OUT", help="write all figures to OUT (atomically)")
    args = ap.parse_args(argv)
    sections = set(s.strip() for s in args.only.split(",") if s.strip())
    if args.threads < 1 or args.batch < 1 or args.repeat < 1 or args.min_time < 0:
        ap.error("--threads, --batch and --repeat must be >= 1, --min-time >= 0")
    if not sections <= {"conv", "ops", "gemm"}:
        ap.error(f"unknown section(s) in --only: {sorted(sections - {'conv', 'ops', 'gemm'})}")

    try:
        import torch
    except ImportError:
        print("compare_torch.py: PyTorch is not installed in this Python "
              f"({sys.executable}); install the CPU build (pip install torch) to compare.",
              file=sys.stderr)
        return 2
    try:
        import tfe
    except ImportError as e:
        print(f"compare_torch.py: cannot import tfe ({e}); build it first "
              "(pip install . in this environment).", file=sys.stderr)
        return 2
    try:
        modules = bench_modules()
    except ImportError as e:
        print(f"compare_torch.py: cannot import the cases in benchmarks/bench_*.py ({e}); "
              "they need pytest (pip install pytest).", file=sys.stderr)
        return 2
    native = tfe._native
    tfe.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)

    load0 = os.getloadavg()
    print(f"tfe {tfe.__version__} vs torch {torch.__version__} | CPU {_cpu_model()}, "
          f"{os.cpu_count()} logical cores | threads tfe={native.get_num_threads()} "
          f"torch={torch.get_num_threads()} | batch {args.batch} | repeat {args.repeat}")
    print(f"GEMM micro-kernel: {native.gemm_kernel()} | load average at start: "
          f"{load0[0]:.2f} (above ~0 means other work shares the cores: figures are noisy)")
    print("ratio = torch ms / tfe ms (> 1: tfe faster); rows are checked tfe vs torch first")

    rng = np.random.default_rng(0)
    results, mismatches = [], []
    t_start = time.time()
    cases = make_cases(native, torch, args.batch, rng, sections, modules)
    print("OpenMP runtimes loaded: " + (", ".join(_omp_runtimes()) or "none found"))
    for module in modules:
        for section, title in module.TORCH_SECTIONS:
            run_section(title, [c for c in cases if c.section == section], args, results,
                        mismatches)
    peaks = None
    if "gemm" in sections:
        peaks = gemm_section(native, torch, args, rng, results, mismatches)
    load1 = os.getloadavg()
    print(f"\nload average at end: {load1[0]:.2f}; wall {time.time() - t_start:.0f} s")

    if args.json:
        meta = dict(
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            tfe_version=tfe.__version__, torch_version=torch.__version__,
            python=platform.python_version(), cpu=_cpu_model(), logical_cores=os.cpu_count(),
            threads=args.threads, batch=args.batch, repeat=args.repeat, min_time=args.min_time,
            settle=args.settle, gemm_kernel=native.gemm_kernel(), fma_peak_gflops=peaks,
            openmp_runtimes=_omp_runtimes(), loadavg_start=load0[0], loadavg_end=load1[0],
            rel_tol=REL_TOL, mismatches=mismatches)
        write_json_atomic(args.json, dict(meta=meta, results=results))
        print(f"wrote {args.json}")
    if mismatches:
        print(f"\nMISMATCH: tfe and torch outputs differ beyond rel {REL_TOL:g} in: "
              + ", ".join(mismatches), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
