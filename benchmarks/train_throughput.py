#!/usr/bin/env python
"""Whole models, tfe vs PyTorch (CPU, eager): training and inference throughput, peak memory
of a training step, and how both scale with the batch and the thread count.

Every measurement runs in a fresh process (one model, one framework), so that neither
library's OpenMP threads, allocator or caches touch the other's; the processes of a round
alternate tfe / PyTorch and the round order flips every round, so that noise on a shared
machine hits both alike. The figure per cell is the median over ``--rounds`` processes;
ratio = PyTorch time / tfe time (above 1 tfe is faster).

One training step = forward + softmax cross-entropy + backward + SGD (momentum 0.9, weight
decay 5e-4), the step tfe-train runs; inference = eval-mode forward without a graph.
Both sides get the same random 1×48×48 batch; the models are the same layer for layer
(benchmarks/torch_models.py builds its twin from the same layer list); weights start from each library's own
initialisation, which does not change the work.

Peak memory: the process's peak resident set (ru_maxrss) after the timed training steps
minus its resident set just before the model is built (imports and the input batch already
there): what the model, its gradients, the optimiser state and a step's activations
took at their peak.

Usage:
  python benchmarks/train_throughput.py [--models resnet18,resnet12,tfe18,deepid]
      [--threads 2] [--batch 128] [--rounds 3] [--min-time 3] [--scaling] [--json OUT]

``--scaling`` adds, for ResNet18 training: batch 32 / 64 / 128 / 256 at --threads, and
1 thread against --threads at --batch (both frameworks). ``TFE_GEMM_KERNEL=avx2`` (or
generic) forces tfe's lower micro-kernel path, as everywhere; the header names the level.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEEPID_IDENTITIES = 10575  # CASIA-WebFace's people, the paper's DeepID classifier
NUM_CLASSES = 8


def arch_of(model: str) -> dict:
    """The architecture dictionary (as tfe stores it) of a benchmark model."""
    deepid = {"name": "deepid", "num_identities": DEEPID_IDENTITIES, "in_channels": 1,
              "dropout": 0.4}
    resnet = {"resnet18": [3, 3, 2], "resnet12": [2, 2, 1]}
    if model in resnet:
        return {"name": model, "blocks": resnet[model], "num_classes": NUM_CLASSES,
                "in_channels": 1}
    if model == "deepid":
        return deepid
    if model in ("tfe18", "tfe12"):
        return {"name": "tfe", "identity": deepid,
                "emotion": arch_of("resnet" + model[3:]), "num_classes": NUM_CLASSES}
    raise SystemExit(f"train_throughput: unknown model {model!r}")


def classes_of(arch: dict) -> int:
    return arch["num_identities"] if arch["name"] == "deepid" else arch["num_classes"]


# ---------------------------------------------------------------------------------------------
# worker: one framework, one model, one mode, in this process


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _timed(step, min_time, warmup=3):
    for _ in range(warmup):
        step()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and n >= 3:
            return elapsed / n


def _tfe_worker(arch, mode, batch, threads, min_time, x, y):
    import tfe
    from tfe import models, optim
    from tfe.function import no_grad
    from tfe.step import TrainStep
    from tfe.tensor import Tensor

    tfe.set_num_threads(threads)
    before = _rss_mib()
    model = models.build(arch)
    if mode == "train":
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        step = TrainStep(model, opt)
        seconds = _timed(lambda: step(x, y), min_time)
    else:
        model.eval()
        xt = Tensor(x)

        def forward():
            with no_grad():
                model(xt)
        seconds = _timed(forward, min_time)
    return seconds, before, {"kernel": tfe._native.gemm_kernel(), "version": tfe.__version__}


def _torch_worker(layers, mode, batch, threads, min_time, x, y):
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, HERE)
    import torch_models

    torch.set_num_threads(threads)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    before = _rss_mib()
    model = torch_models.build(layers)
    if mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xt), yt).backward()
            opt.step()
        seconds = _timed(step, min_time)
    else:
        model.eval()

        def forward():
            with torch.no_grad():
                model(xt)
        seconds = _timed(forward, min_time)
    return seconds, before, {"version": torch.__version__}


def worker(args) -> None:
    import numpy as np

    arch = json.loads(args.arch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, 48, 48), dtype=np.float32)
    y = rng.integers(0, classes_of(arch), args.batch).astype(np.int64)
    # The PyTorch process never imports tfe: it gets the layer list its twin is built from.
    net = arch if args.framework == "tfe" else json.loads(args.layers)
    run = _tfe_worker if args.framework == "tfe" else _torch_worker
    seconds, before, info = run(net, args.mode, args.batch, args.threads, args.min_time, x, y)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "images_per_s": args.batch / seconds,
                      "peak_mib": peak - before, **info}))


# ---------------------------------------------------------------------------------------------
# driver


def measure(framework, model, mode, batch, threads, min_time) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    from tfe.model_reader import layers_from_architecture

    arch = arch_of(model)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--framework", framework,
           "--arch", json.dumps(arch), "--mode", mode, "--batch", str(batch),
           "--threads", str(threads), "--min-time", str(min_time),
           "--layers", json.dumps(layers_from_architecture(arch, 48))]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"train_throughput: {framework} {model} {mode} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(cells, rounds, min_time, log):
    """cells: list of (model, mode, batch, threads). Returns one row per cell with each
    framework's median images/s and peak memory over the rounds, and the ratio."""
    runs = {(c, f): [] for c in cells for f in ("tfe", "torch")}
    for r in range(rounds):
        order = ("tfe", "torch") if r % 2 == 0 else ("torch", "tfe")
        for cell in cells:
            for framework in order:
                runs[(cell, framework)].append(measure(framework, *cell, min_time))
        log(f"round {r + 1}/{rounds} done")
    rows = []
    for cell in cells:
        model, mode, batch, threads = cell
        row = {"model": model, "mode": mode, "batch": batch, "threads": threads}
        for f in ("tfe", "torch"):
            row[f"{f}_images_per_s"] = statistics.median(m["images_per_s"] for m in runs[(cell, f)])
            if mode == "train":
                row[f"{f}_peak_mib"] = statistics.median(m["peak_mib"] for m in runs[(cell, f)])
        row["ratio"] = row["tfe_images_per_s"] / row["torch_images_per_s"]
        row["per_round"] = {f: [m["images_per_s"] for m in runs[(cell, f)]]
                            for f in ("tfe", "torch")}
        rows.append(row)
    return rows


def header(threads) -> dict:
    import tfe

    sys.path.insert(0, HERE)
    import compare_torch  # its CPU-name reader; torch itself is imported there only when used

    return {"date": datetime.date.today().isoformat(), "cpu": compare_torch._cpu_model(),
            "tfe_version": tfe.__version__,
            "gemm_kernel": tfe._native.gemm_kernel(),
            "fma_peak_gflops": tfe._native.fma_peak_gflops(threads), "threads": threads}


def table(rows) -> str:
    lines = ["| model | mode | batch | threads | tfe img/s | PyTorch img/s | ratio | "
             "peak MiB tfe / PyTorch |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        mem = (f"{r['tfe_peak_mib']:.0f} / {r['torch_peak_mib']:.0f}"
               if "tfe_peak_mib" in r else "")
        lines.append(f"| {r['model']} | {r['mode']} | {r['batch']} | {r['threads']} | "
                     f"{r['tfe_images_per_s']:,.0f} | {r['torch_images_per_s']:,.0f} | "
                     f"{r['ratio']:.2f} | {mem} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet18,resnet12,tfe18,deepid")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--json", help="write the header and rows to this file")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--framework", choices=("tfe", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--arch", help=argparse.SUPPRESS)
    ap.add_argument("--layers", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("train", "infer"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    head = header(args.threads)
    print(" ".join(f"{k}={v}" for k, v in head.items()), flush=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        arch_of(m)  # unknown names fail before anything runs
    cells = [(m, mode, args.batch, args.threads) for m in models for mode in ("train", "infer")]
    if args.scaling:
        cells += [("resnet18", "train", b, args.threads) for b in (32, 64, 256)
                  if b != args.batch]
        cells += [("resnet18", "train", args.batch, 1)] if args.threads != 1 else []
    rows = compare(cells, args.rounds, args.min_time, lambda m: print(m, flush=True))
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": head, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
