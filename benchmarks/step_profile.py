"""Where a training step's time goes, op by op, and what fewer multiplications could buy.

    python benchmarks/step_profile.py [--model resnet18] [--batch 128] [--threads 2]
        [--steps 5] [--mode train|infer] [--json FILE]

Runs whole steps of a tfe model on the CPU (train: forward, cross-entropy, backward, SGD
with momentum; infer: the eval-mode forward) and times every native call the step makes,
through a timing stand-in for the native backend (tfe.backend). Calls are grouped by op and,
for convolutions, by layer: the 3x3 stride-1 layers (Winograd's), the stride-2 and 1x1
projections, the stem (one input channel). Per group: milliseconds per step, share of the step, and for the
convolutions the rate in GFLOP/s counted at direct-convolution FLOPs (2 per multiply-add;
the backward is the data and the weight gradient) as a fraction of the machine's measured
FMA peak (tfe._native.fma_peak_gflops).

The last lines bound what a fast algorithm for the 3x3 stride-1 layers can give (Amdahl):
if their forward and data-gradient time shrank by the factor of fewer multiplications
alone (Winograd F(2x2,3x3): 2.25, F(4x4,3x3): 4), transforms free and everything else as
measured, the step would be at most that many times faster. The weight gradient is left
as it is: by Winograd it measured slower than the direct kernel at every ResNet18 shape
(csrc/conv/winograd_train.cpp).

Timing each call adds about a microsecond of Python per call; the step total is measured
apart without the stand-in. Quote ratios from one run: the machines are shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np

import tfe
from tfe import _native, backend, models, ops, optim
from tfe.function import no_grad
from tfe.tensor import Tensor

MODELS = {
    "resnet18": lambda: models.resnet18(),
    "resnet12": lambda: models.resnet12(),
    "deepid": lambda: models.DeepID(10575),
    "tfe18": lambda: models.TFE(models.DeepID(10575), models.resnet18(), 8),
}


def _shape(a):
    return tuple(np.asarray(a).shape) if not hasattr(a, "shape") else tuple(a.shape)


def conv_group(x_shape, w_shape, stride):
    """The layer kind of a convolution, from its input and weight shapes."""
    _, C, H, _ = x_shape
    K, _, k, _ = w_shape
    if C == 1:
        return f"conv stem {k}x{k} s{stride} {C}->{K} @{H}"
    if k == 3 and stride == 1:
        return f"conv 3x3 s1 {C}->{K} @{H}"
    return f"conv {k}x{k} s{stride} {C}->{K} @{H}"


def conv_flops(x_shape, w_shape, stride, pad):
    N, C, H, W = x_shape
    K, _, k, _ = w_shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    return 2.0 * N * K * C * k * k * Ho * Wo


class TimedNative:
    """tfe._native with every op call timed into ``self.seconds[group]``."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.flops = defaultdict(float)

    def __getattr__(self, name):
        fn = getattr(_native, name)
        if not callable(fn):
            return fn

        def call(*args, **kwargs):
            group, flops = name, 0.0
            if name.startswith("conv2d_"):
                stride = kwargs.get("stride", args[3] if len(args) > 3 else 1)
                pad = kwargs.get("pad", args[4] if len(args) > 4 else 0)
                x, w = (args[0], args[1]) if name == "conv2d_forward" else (args[1], args[2])
                g = conv_group(_shape(x), _shape(w), stride)
                f = conv_flops(_shape(x), _shape(w), stride, pad)
                if name == "conv2d_forward":
                    group, flops = g + " forward", f
                else:  # dx and dw, each as many FLOPs as the forward
                    group, flops = g + " backward", f * (2 if kwargs.get("compute_dx", True) else 1)
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.seconds[group] += time.perf_counter() - t0
            self.flops[group] += flops
            return out

        return call


def make_step(model_name, mode, batch, seed=0):
    rng = np.random.default_rng(seed)
    tfe.random.manual_seed(seed)
    model = MODELS[model_name]()
    classes = 10575 if model_name == "deepid" else 8
    x = Tensor(rng.standard_normal((batch, 1, 48, 48), dtype=np.float32))
    y = rng.integers(0, classes, batch).astype(np.int64)
    if mode == "infer":
        model.eval()

        def step():
            with no_grad():
                model(x)
        return step
    model.train()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        loss = ops.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def profile(model_name, mode, batch, threads, steps):
    tfe.set_num_threads(threads)
    step = make_step(model_name, mode, batch)
    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - t0) / steps
    timed = TimedNative()
    backend._current = timed  # the stand-in for this process's remaining steps
    try:
        for _ in range(steps):
            step()
    finally:
        backend._current = _native
    peak = _native.fma_peak_gflops(threads)
    rows = []
    for group, s in sorted(timed.seconds.items(), key=lambda kv: -kv[1]):
        ms = 1e3 * s / steps
        gflops = timed.flops[group] / s / 1e9 if timed.flops[group] else None
        rows.append({"group": group, "ms": ms, "share": s / steps / step_s,
                     "gflops": gflops, "of_peak": gflops / peak if gflops else None})
    wino = sum(r["ms"] for r in rows if r["group"].startswith("conv 3x3 s1") and
               r["group"].endswith("forward"))
    # The 3x3 stride-1 backward is dx + dw in one call; split it by FLOPs (equal halves).
    wino += sum(r["ms"] / 2 for r in rows if r["group"].startswith("conv 3x3 s1") and
                r["group"].endswith("backward"))
    total_ms = 1e3 * step_s
    bounds = {f: total_ms / (total_ms - wino + wino / f) for f in (2.25, 4.0)}
    return {"model": model_name, "mode": mode, "batch": batch, "threads": threads,
            "kernel": _native.gemm_kernel(), "fma_peak_gflops": peak, "step_ms": total_ms,
            "timed_ms": sum(r["ms"] for r in rows), "winograd_part_ms": wino,
            "amdahl_bound": bounds, "rows": rows}


def report(r):
    print(f"{r['model']} {r['mode']}, batch {r['batch']}, {r['threads']} threads, kernel level "
          f"{r['kernel']}, FMA peak {r['fma_peak_gflops']:.0f} GFLOP/s")
    print(f"step {r['step_ms']:.1f} ms (the timed calls add up to {r['timed_ms']:.1f} ms)")
    print(f"| {'op / layer':<36} | {'ms/step':>8} | {'share':>6} | {'GFLOP/s':>8} | "
          f"{'of peak':>7} |")
    print(f"|{'-' * 38}|{'-' * 9}:|{'-' * 7}:|{'-' * 9}:|{'-' * 8}:|")
    for row in r["rows"]:
        g = f"{row['gflops']:.0f}" if row["gflops"] else ""
        p = f"{100 * row['of_peak']:.0f} %" if row["of_peak"] else ""
        print(f"| {row['group']:<36} | {row['ms']:>8.2f} | {100 * row['share']:>5.1f}% | "
              f"{g:>8} | {p:>7} |")
    w = r["winograd_part_ms"]
    what = "forward + data gradient" if r["mode"] == "train" else "forward"
    print(f"3x3 stride-1 {what}: {w:.1f} ms = "
          f"{100 * w / r['step_ms']:.0f} % of the step; with only their multiplications cut "
          f"(transforms free), the step is at most "
          + ", ".join(f"{b:.2f}x faster at {f}x fewer" for f, b in r["amdahl_bound"].items()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    ap.add_argument("--mode", choices=("train", "infer"), default="train")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    r = profile(args.model, args.mode, args.batch, args.threads, args.steps)
    report(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
