#!/usr/bin/env python
"""Batch-1 latency of the C library (libtfe) vs onnxruntime on the same exported model.

For each network (ResNet18 and TFE18 = DeepID + ResNet18 with the TFE head, 1x48x48 gray
input) the script
  1. builds the model in Python with random weights whose batch-norm statistics are
     realistic: gamma/beta are drawn at random, then ONE training-mode forward pass over a
     batch of 64 random inputs with momentum 1 sets every running mean/var to the statistics
     that pass actually saw (so each BN really normalises its input, as after training);
     or loads a given model file (--model);
  2. writes it with tfe.modelfile.save_model and exports ONNX with tfe.export_onnx;
  3. checks that libtfe, onnxruntime and Python tfe agree on the logits;
  4. times, in one process, interleaved: blocks of --runs single-image calls per
     (engine, threads) configuration, the order rotating every round, --rounds rounds; the
     figure per configuration is the median over the rounds of the mean time per call.

What is timed (all single images, called from Python):
  * tfe predict: tfe_predict(48x48 GRAY8 pixels) through ctypes: copy/resize (identity at
    48x48), per-pixel normalisation, the network, softmax;
  * tfe forward: tfe_forward(normalised float input): the network alone;
  * onnxruntime: InferenceSession.run on float pixels [1,1,48,48]: the exported graph
    includes the normalisation (Sub, Mul) and the softmax, so it matches "tfe predict".
  Both sides pay a Python call: ctypes (about 1 us, printed) and onnxruntime's binding.
onnxruntime runs with its default graph optimisations (it folds BN into the convolutions
itself), intra_op_num_threads = 1 or 2, inter_op 1, sequential execution.

ratio = onnxruntime time / tfe time at the same thread count: above 1 tfe is faster; the
goal is 2 (half of onnxruntime's time).

Usage:
  python benchmarks/latency_cpp.py [--lib PATH/libtfe.so] [--threads 1,2] [--runs 200]
      [--rounds 9] [--models resnet18,tfe18] [--model FILE.safetensors] [--out FILE]
      [--pause-pid PID]

--lib: libtfe.so to load; default: the one installed with the tfe package
(``python -m tfe --cmakedir``), else build*/libtfe.so in the repository.
--pause-pid: SIGSTOP that process (e.g. a training run sharing the cores) while timing and
SIGCONT it afterwards, also on errors and signals; the timing stops early rather than keep
it paused for more than --max-pause seconds (default 170).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import glob
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 48


# ---- models --------------------------------------------------------------------------------

def _set_momentum(model, value):
    for _, m in model.named_modules():
        if hasattr(m, "momentum"):
            m.momentum = value


def realistic(model, seed):
    """Random gamma/beta, then running stats = the statistics of one training-mode pass."""
    from tfe.function import no_grad
    from tfe.tensor import Tensor

    rng = np.random.default_rng(seed)
    state = {}
    for k, v in model.state_dict().items():
        v = np.array(v, copy=True)
        if k.endswith("bn1.weight") or k.endswith("bn2.weight") or k.endswith("bn.weight") \
                or k.endswith("bn_weight") or k.endswith("proj_bn.weight"):
            v = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
        elif k.endswith("bn1.bias") or k.endswith("bn2.bias") or k.endswith("bn.bias") \
                or k.endswith("bn_bias") or k.endswith("proj_bn.bias"):
            v = rng.normal(0.0, 0.2, v.shape).astype(np.float32)
        state[k] = v
    model.load_state_dict(state)
    x = rng.standard_normal((64, 1, SIZE, SIZE)).astype(np.float32)
    _set_momentum(model, 1.0)
    model.train()
    with no_grad():
        model(Tensor(x))
    _set_momentum(model, 0.1)
    model.eval()
    return model


def build(name, seed=0):
    from tfe import models
    if name == "resnet18":
        return realistic(models.resnet18(8), seed)
    if name == "tfe18":
        m = models.TFE(models.DeepID(100), models.resnet18(8), 8)
        return realistic(m, seed)
    raise SystemExit(f"unknown model {name!r} (resnet18, tfe18)")


def write_model(model, folder, name):
    from tfe import modelfile
    from tfe.data.transforms import Normalizer
    rng = np.random.default_rng(1)
    norm = Normalizer.fit(rng.integers(0, 256, (32, SIZE, SIZE), dtype=np.uint8))
    path = os.path.join(folder, f"{name}.safetensors")
    modelfile.save_model(path, model, norm, [f"class{i}" for i in range(8)])
    return path


# ---- libtfe through ctypes --------------------------------------------------------------------

def find_lib(arg):
    if arg:
        return arg
    r = subprocess.run([sys.executable, "-m", "tfe", "--cmakedir"], capture_output=True,
                       text=True)
    d = r.stdout.strip()
    if r.returncode == 0 and d:
        hits = sorted(glob.glob(os.path.join(d, "..", "..", "libtfe.so*")))
        if hits:
            return hits[0]
    hits = sorted(glob.glob(os.path.join(ROOT, "build*", "libtfe.so")))
    if hits:
        return hits[0]
    raise SystemExit("libtfe.so not found: pass --lib PATH")


class LibTfe:
    def __init__(self, path):
        L = ctypes.CDLL(path)
        vp, i, fp = ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p
        L.tfe_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
        L.tfe_last_error.restype = ctypes.c_char_p
        L.tfe_set_num_threads.argtypes = [i]
        L.tfe_forward.argtypes = [vp, fp, i, fp]
        L.tfe_predict.argtypes = [vp, fp, i, i, i, i, fp]
        L.tfe_model_free.argtypes = [vp]
        L.tfe_model_num_classes.argtypes = [vp]
        L.tfe_version.restype = ctypes.c_char_p
        self.L, self.path = L, path

    def load(self, path):
        m = ctypes.c_void_p()
        if self.L.tfe_model_load(path.encode(), ctypes.byref(m)) != 0:
            raise SystemExit(f"tfe_model_load: {self.L.tfe_last_error().decode()}")
        return m

    def threads(self, n):
        self.L.tfe_set_num_threads(n)


# ---- pausing another process ------------------------------------------------------------------

class Paused:
    """SIGSTOP pid on enter, SIGCONT on exit (also after an exception or SIGTERM/SIGINT)."""

    def __init__(self, pid, limit):
        self.pid, self.limit, self.t0 = pid, limit, None

    def _resume(self, *_):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def _on_signal(self, signum, frame):
        self._resume()
        raise SystemExit(128 + signum)

    def __enter__(self):
        self.t0 = time.monotonic()
        if self.pid:
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(s, self._on_signal)
            os.kill(self.pid, signal.SIGSTOP)
        return self

    def expired(self):
        return self.pid and time.monotonic() - self.t0 > self.limit

    def __exit__(self, *exc):
        self._resume()
        return False


# ---- measurement ----------------------------------------------------------------------------

def mean_call(fn, n, cpu=None):
    """Mean wall time per call; appends the mean process CPU time per call to `cpu`."""
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    t1, c1 = time.perf_counter(), time.process_time()
    if cpu is not None:
        cpu.append((c1 - c0) / n)
    return (t1 - t0) / n


def run_model(name, model_path, lib, threads, args, pause, out):
    import onnxruntime as ort
    from tfe import export_onnx, modelfile
    from tfe.data.transforms import Normalizer  # noqa: F401  (documented dependency)

    onnx_path = model_path[: -len(".safetensors")] + ".onnx"
    export_onnx.export(model_path, onnx_path)
    lm = modelfile.LoadedModel(model_path)
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    pix_f = np.ascontiguousarray(pixels[None, None].astype(np.float32))
    mean = lm_tensor(model_path, "preprocess.mean")
    std = lm_tensor(model_path, "preprocess.std")
    inv_std = (1.0 / std.astype(np.float64)).astype(np.float32)
    xn = np.ascontiguousarray(((pixels.astype(np.float32) - mean) * inv_std)[None, None])

    m = lib.load(model_path)
    K = lib.L.tfe_model_num_classes(m)
    logits = np.zeros((1, K), np.float32)
    probs = np.zeros((1, K), np.float32)
    xp, lp, pp = xn.ctypes.data, logits.ctypes.data, probs.ctypes.data
    pixp = np.ascontiguousarray(pixels).ctypes.data
    L = lib.L

    sessions = {}
    for t in threads:
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sessions[t] = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    # Agreement first: timing two different computations would mean nothing.
    lib.threads(threads[0])
    assert L.tfe_forward(m, xp, 1, lp) == 0, L.tfe_last_error()
    assert L.tfe_predict(m, pixp, SIZE, SIZE, SIZE, 0, pp) == 0, L.tfe_last_error()
    ref = lm.model  # Python tfe, eval mode
    from tfe.function import no_grad
    from tfe.tensor import Tensor
    with no_grad():
        py_logits = np.array(ref(Tensor(xn)).data)
    o_logits, o_probs = sessions[threads[0]].run(["logits", "probabilities"], {"pixels": pix_f})
    d_py = float(np.abs(logits - py_logits).max())
    d_ort = float(np.abs(logits - o_logits).max())
    d_prob = float(np.abs(probs - o_probs).max())
    scale = float(np.abs(py_logits).max())
    out(f"\n== {name}: agreement (max |difference| of logits; max |logit| = {scale:.3g})")
    out(f"   libtfe vs Python tfe eval {d_py:.2e}   libtfe vs onnxruntime {d_ort:.2e}   "
        f"probabilities libtfe predict vs onnxruntime {d_prob:.2e}")
    if max(d_py, d_ort) > 1e-3 * max(1.0, scale):
        out("   MISMATCH: not timing")
        return False

    def tfe_forward():
        L.tfe_forward(m, xp, 1, lp)

    def tfe_predict():
        L.tfe_predict(m, pixp, SIZE, SIZE, SIZE, 0, pp)

    def ort_run(sess):
        feed = {"pixels": pix_f}
        return lambda: sess.run(None, feed)

    configs = []  # (engine, threads, fn, setup)
    for t in threads:
        configs.append(("tfe predict", t, tfe_predict, lambda t=t: lib.threads(t)))
        configs.append(("tfe forward", t, tfe_forward, lambda t=t: lib.threads(t)))
        configs.append(("onnxruntime", t, ort_run(sessions[t]), lambda: None))
    samples = {(c[0], c[1]): [] for c in configs}
    cpu = {(c[0], c[1]): [] for c in configs}

    nop = L.tfe_get_num_threads
    ctypes_us = min(mean_call(nop, 2000) for _ in range(3)) * 1e6

    for e, t, fn, setup in configs:  # warm-up: scratch, caches, thread pools
        setup()
        mean_call(fn, max(20, args.runs // 4))
    with pause:
        for r in range(args.rounds):
            k = r % len(configs)
            for e, t, fn, setup in configs[k:] + configs[:k]:
                setup()
                time.sleep(args.settle)  # let the other runtime's spinning workers go idle
                samples[(e, t)].append(mean_call(fn, args.runs, cpu[(e, t)]))
                if pause.expired():
                    break
            if pause.expired():
                out(f"   (stopped after {r + 1} rounds: pause limit)")
                break
    L.tfe_model_free(m)

    med = {k: statistics.median(v) for k, v in samples.items() if v}
    out(f"   timing: {args.rounds} rounds x {args.runs} calls per configuration, interleaved; "
        f"median of the per-round means (ctypes call overhead {ctypes_us:.2f} us)")
    out(f"   {'engine':<13}{'threads':>8}{'ms/image':>10}{'spread':>9}"
        f"{'ort/tfe':>9}{'cpu ms':>9}{'ort/tfe':>9}")
    for e, t, _, _ in configs:
        v = samples[(e, t)]
        spread = (max(v) - min(v)) / med[(e, t)] if v else float("nan")
        ratio = med[("onnxruntime", t)] / med[(e, t)]
        rs = " " * 9 if e == "onnxruntime" else f"{ratio:9.2f}"
        c = statistics.median(cpu[(e, t)])
        cr = statistics.median(cpu[("onnxruntime", t)]) / c
        cs = "" if e == "onnxruntime" else f"{cr:9.2f}"
        out(f"   {e:<13}{t:>8}{med[(e, t)] * 1e3:>10.3f}{spread:>8.0%} {rs}{c * 1e3:>9.3f}{cs}")
    out("   ms/image: wall time; spread: (max - min) / median over the rounds; ort/tfe: "
        "onnxruntime / tfe at the same thread count (> 1: tfe faster); cpu ms: process CPU "
        "time per call (all threads, spinning included): at 1 thread a check that is less "
        "sensitive to other load than wall time")
    best_tfe = min(med[(e, t)] for e, t, *_ in configs if e == "tfe predict")
    best_ort = min(med[(e, t)] for e, t, *_ in configs if e == "onnxruntime")
    out(f"   best of thread counts: onnxruntime / tfe predict = {best_ort / best_tfe:.2f}")
    return True


def lm_tensor(path, key):
    from tfe import checkpoint
    tensors, _ = checkpoint.load(path)
    return tensors[key]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lib")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--settle", type=float, default=0.02)
    p.add_argument("--models", default="resnet18,tfe18")
    p.add_argument("--model", help="time this model file instead of built ones")
    p.add_argument("--out", help="also append the report to this file")
    p.add_argument("--pause-pid", type=int, default=0)
    p.add_argument("--max-pause", type=float, default=170.0)
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]

    try:
        import onnxruntime as ort
    except ImportError:
        raise SystemExit("needs onnxruntime (pip install onnxruntime onnx)")
    import tfe

    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    lib = LibTfe(find_lib(args.lib))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out(f"latency_cpp.py  {datetime.datetime.now().isoformat(timespec='seconds')}")
    out(f"cpu: {cpu}, {os.cpu_count()} logical cores; load average {os.getloadavg()[0]:.2f}"
        f"{' (process ' + str(args.pause_pid) + ' paused while timing)' if args.pause_pid else ''}")
    out(f"libtfe {lib.L.tfe_version().decode()} ({lib.path}); tfe {tfe.__version__}; "
        f"onnxruntime {ort.__version__}; python {platform.python_version()}")
    out(f"batch 1, {SIZE}x{SIZE} gray; threads {threads}; OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')}; tfe kernel level "
        f"{tfe._native.gemm_kernel()} (TFE_GEMM_KERNEL={os.environ.get('TFE_GEMM_KERNEL', 'unset')}); "
        f"onnxruntime picks its own")

    ok = True
    with tempfile.TemporaryDirectory() as d:
        if args.model:
            todo = [(os.path.basename(args.model), args.model)]
        else:
            todo = [(n, write_model(build(n), d, n)) for n in args.models.split(",")]
        for name, path in todo:
            pause = Paused(args.pause_pid, args.max_pause)
            ok &= run_model(name, path, lib, threads, args, pause, out)
    out(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
