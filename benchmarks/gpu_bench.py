#!/usr/bin/env python
"""tfe vs PyTorch (cuDNN) on one GPU: every conv layer, and whole training steps.

Sections, in this order (the summary comes last so that it is the end of a log):

  conv   for every conv shape of ResNet18 and DeepID (benchmarks/shapes.py) at batch 128:
         tfe's conv2d_forward + conv2d_backward on CUDA tensors against F.conv2d +
         torch.autograd.grad (dx unless the input is the image, dw, db where there is a
         bias) with cudnn.benchmark on, once with cuDNN's default TF32 and once strict FP32
         (cudnn.allow_tf32 = False, which is what tfe computes). Outputs are first compared
         with the strict-FP32 ones (MISMATCH above 1e-3 of max |torch|, exit 3).
         ratio = tfe ms / cuDNN ms: above 1 tfe is slower. Totals weighted by how often a
         shape occurs in the network.
  step   one SGD training step (forward, cross-entropy, backward, SGD momentum 0.9, weight
         decay 5e-4) of ResNet18 and of TFE18 (DeepID + ResNet18 + TFE head, with the
         pipeline's two parameter groups), batch 128, all from the same weights: tfe eager
         (TrainStep(use_graph=False)), tfe as a replayed CUDA graph (use_graph=True),
         PyTorch eager (default TF32; and strict FP32), and PyTorch with the whole step
         captured in a torch.cuda.CUDAGraph. Every variant takes the batch from the same
         NumPy arrays and copies it to the GPU each step, as TrainStep does.
         speed-up = PyTorch eager (default TF32) ms / variant ms: above 1 is faster.
  check  3 identical steps from the same weights and batch: the largest relative
         difference of tfe's losses from strict-FP32 PyTorch's, and of both from PyTorch in
         float64 (repeated steps on one batch amplify float32 rounding through the batch
         statistics, so the float64 column says which side is nearer the exact value).
  summary  a few lines, after the JSON (--out) is written, atomically.

Timing: each variant is warmed up (cuDNN's algorithm search, tfe's graph recording), then
timed as `inner` back-to-back calls between two device synchronisations (perf_counter),
inner chosen so that a measurement lasts at least 0.1 s (convs) or 0.25 s (steps; less
with --quick); the sides alternate (the order rotates every repetition) and the figure is
the median of the repetitions. tfe and PyTorch run on their own streams: both are
synchronised before each measurement, so one side's work never overlaps the other's.

Usage:
  python benchmarks/gpu_bench.py [--quick] [--out FILE.json]
  python benchmarks/gpu_bench.py --device cpu     # smoke test of every code path on the CPU
                                                  # (tiny batch, one repetition; no figures)
Exit status: 0; 1 when a case raised (recorded, the others still run); 2 when there is no
GPU, PyTorch or tfe; 3 when a conv output disagrees with PyTorch.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import traceback
from contextlib import contextmanager

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402
from compare_torch import REL_TOL, write_json_atomic  # noqa: E402

STEPS_CHECKED = 3
NUM_IDENTITIES = 100  # DeepID's identity classifier is not part of TFE's forward: any size
SGD = dict(momentum=shapes.SGD_MOMENTUM, weight_decay=shapes.SGD_WEIGHT_DECAY)
# The pipeline's joint-training rates (Protocol.lr_joint, lr_joint_identity); ResNet18 uses
# the first. Only the correctness check depends on them (through conditioning).
LR, LR_IDENTITY = 0.01, 0.001


class Config:
    """Repetition counts. ``case_budget`` caps the seconds one case may take (a slow side
    gets fewer repetitions, never fewer than ``min_repeat``); after ``soft_deadline``
    seconds of the run every case uses ``min_repeat``, so that an unexpectedly slow kernel
    cannot push the whole script past its time."""

    def __init__(self, repeat, min_time, step_repeat, step_min_time, case_budget, step_budget,
                 min_repeat, soft_deadline, warmup):
        self.repeat, self.min_time = repeat, min_time
        self.step_repeat, self.step_min_time = step_repeat, step_min_time
        self.case_budget, self.step_budget = case_budget, step_budget
        self.min_repeat, self.soft_deadline, self.warmup = min_repeat, soft_deadline, warmup


NORMAL = Config(repeat=9, min_time=0.1, step_repeat=7, step_min_time=0.25, case_budget=5.0,
                step_budget=10.0, min_repeat=3, soft_deadline=150.0, warmup=2)
QUICK = Config(repeat=3, min_time=0.03, step_repeat=3, step_min_time=0.1, case_budget=1.5,
               step_budget=3.0, min_repeat=2, soft_deadline=75.0, warmup=2)
SMOKE = Config(repeat=1, min_time=0.0, step_repeat=1, step_min_time=0.0, case_budget=0.0,
               step_budget=0.0, min_repeat=1, soft_deadline=0.0, warmup=1)


# ---------------------------------------------------------------------------------------------
# devices and timing


class Env:
    """The two libraries on one device, and how to wait for each."""

    def __init__(self, tfe, torch, device):
        self.tfe, self.torch, self.device = tfe, torch, device
        self.cuda = device.startswith("cuda")
        self.index = int(device.split(":")[1]) if ":" in device else 0
        self.t_start = time.perf_counter()

    def sync_tfe(self):
        if self.cuda:
            self.tfe.cuda.synchronize(self.index)

    def sync_torch(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.index)

    def sync_all(self):
        self.sync_tfe()
        self.sync_torch()

    def elapsed(self):
        return time.perf_counter() - self.t_start

    def to_tfe(self, a):
        t = self.tfe.as_tensor(np.ascontiguousarray(a))
        return t if self.device == "cpu" else t.to(self.device)

    def to_torch(self, a, requires_grad=False):
        t = self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        return t.requires_grad_(requires_grad)

    def empty_caches(self):
        # between cases, so that neither library's caching pool crowds the other
        if self.cuda:
            self.torch.cuda.empty_cache()
            empty = getattr(self.tfe.cuda, "empty_cache", None)
            if empty is not None:
                empty(self.index)


class Side:
    """One thing to time: ``fn`` runs it once; ``sync`` waits for its device work;
    ``setup`` (untimed) runs before every measurement (e.g. sets PyTorch's TF32 flag)."""

    def __init__(self, name, fn, sync, setup=None):
        self.name, self.fn, self.sync, self.setup = name, fn, sync, setup


@contextmanager
def tf32(torch, allowed: bool):
    """cuDNN convolutions in TF32 (PyTorch's default) or strict FP32; matmuls stay in
    strict FP32 in both (torch.backends.cuda.matmul.allow_tf32 defaults to False)."""
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = old


def _measure(env, side, inner):
    if side.setup:
        side.setup()
    env.sync_all()
    t0 = time.perf_counter()
    for _ in range(inner):
        side.fn()
    side.sync()
    return (time.perf_counter() - t0) / inner


def time_sides(env, sides, cfg: Config, repeat, min_time, budget, warmup, on_error=None):
    """{side name: [seconds per call, one per repetition]}. With ``on_error(name, exc)``,
    a side that fails in its warm-up is reported there and left out; otherwise it raises."""
    inners, single, ok = [], [], []
    for s in sides:
        try:
            for _ in range(warmup):
                _measure(env, s, 1)
            t = _measure(env, s, 1) if min_time > 0 else 0.0  # no calibration in the smoke test
        except Exception as e:  # noqa: BLE001
            if on_error is None:
                raise
            on_error(s.name, e)
            continue
        ok.append(s)
        single.append(t)
        inners.append(max(1, min(10_000, math.ceil(min_time / max(t, 1e-7)))))
    sides = ok
    if not sides:
        return {}
    per_rep = sum(max(i * t, min_time) for i, t in zip(inners, single))
    if budget > 0:
        repeat = min(repeat, max(cfg.min_repeat, int(budget / max(per_rep, 1e-9))))
    if env.elapsed() > cfg.soft_deadline:
        repeat = min(repeat, cfg.min_repeat)
    out = {s.name: [] for s in sides}
    for r in range(repeat):
        k = r % len(sides)
        for s, inner in list(zip(sides, inners))[k:] + list(zip(sides, inners))[:k]:
            out[s.name].append(_measure(env, s, inner))
    return out


def _ms(samples):
    return statistics.median(samples) * 1e3


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]


def _report_error(errors, where, e):
    errors.append({"where": where, "error": _err(e)})
    print(f"  ERROR in {where}: {_err(e)}", flush=True)
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)).strip().splitlines()
    for line in tb[-4:]:
        print(f"    {line}", flush=True)


# ---------------------------------------------------------------------------------------------
# conv section


def conv_case(env, c, batch, rng):
    """The timed sides and the output check of one conv shape."""
    torch, native = env.torch, env.tfe._native
    F = torch.nn.functional

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x = randn(*c.x_shape(batch))
    w = randn(*c.w_shape(), scale=(c.cin * c.k * c.k) ** -0.5)
    b = randn(c.cout) if c.bias else None
    dy = randn(*c.y_shape(batch))

    fx, fw, fdy = env.to_tfe(x), env.to_tfe(w), env.to_tfe(dy)
    fb = env.to_tfe(b) if c.bias else None
    fdw = env.to_tfe(np.zeros_like(w))  # accumulated into, as the autograd layer does
    fdb = env.to_tfe(np.zeros(c.cout, np.float32))

    tx, tw = env.to_torch(x, c.needs_dx), env.to_torch(w, True)
    tb = env.to_torch(b, True) if c.bias else None
    tdy = env.to_torch(dy)
    wrt = ([tx] if c.needs_dx else []) + [tw] + ([tb] if c.bias else [])

    def tfe_step():
        native.conv2d_forward(fx, fw, fb, c.stride, c.pad)
        native.conv2d_backward(fdy, fx, fw, c.stride, c.pad, dw=fdw, db=fdb,
                               compute_dx=c.needs_dx)

    def torch_step():
        y = F.conv2d(tx, tw, tb, c.stride, c.pad)
        torch.autograd.grad(y, wrt, tdy)

    def check():
        """[(output, max abs err, err / max |torch|)] of tfe against strict-FP32 cuDNN."""
        y = native.conv2d_forward(fx, fw, fb, c.stride, c.pad)
        dx, dw, db = native.conv2d_backward(fdy, fx, fw, c.stride, c.pad,
                                            compute_dx=c.needs_dx)
        with tf32(torch, False):
            ty = F.conv2d(tx, tw, tb, c.stride, c.pad)
            grads = torch.autograd.grad(ty, wrt, tdy)
        g = dict(zip(["dx"] * c.needs_dx + ["dw"] + ["db"] * c.bias, grads))
        pairs = [("y", y, ty), ("dw", dw, g["dw"])]
        if c.needs_dx:
            pairs.append(("dx", dx, g["dx"]))
        if c.bias:
            pairs.append(("db", db, g["db"]))
        rows = []
        for name, got, want in pairs:
            got = np.asarray(got.cpu() if hasattr(got, "cpu") else got, np.float64)
            want = want.detach().cpu().double().numpy()
            err = float(np.max(np.abs(got - want))) if got.shape == want.shape else math.inf
            rows.append((name, err, err / max(float(np.max(np.abs(want))), 1e-30)))
        return rows

    sides = [Side("tfe", tfe_step, env.sync_tfe),
             Side("cudnn_tf32", torch_step, env.sync_torch,
                  lambda: setattr(torch.backends.cudnn, "allow_tf32", True)),
             Side("cudnn_fp32", torch_step, env.sync_torch,
                  lambda: setattr(torch.backends.cudnn, "allow_tf32", False))]
    return sides, check


def conv_section(env, cfg, batch, results, errors, mismatches):
    torch = env.torch
    torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(0)
    rows, totals = [], {}
    for net, convs in (("resnet18", shapes.RESNET18_CONVS), ("deepid", shapes.DEEPID_CONVS)):
        print(f"\n== conv2d forward+backward, {net}, batch {batch} ==", flush=True)
        print(f"{'layer':22s} {'shape':26s} {'n':>2s} {'tfe ms':>9s} {'TF32 ms':>9s} "
              f"{'FP32 ms':>9s} {'tfe/TF32':>8s} {'tfe/FP32':>8s} {'tfe TFLOP/s':>11s}  "
              f"check (max rel err vs FP32)", flush=True)
        tot = {"tfe": 0.0, "cudnn_tf32": 0.0, "cudnn_fp32": 0.0}
        complete = True
        for c in convs:
            old = torch.backends.cudnn.allow_tf32
            try:
                sides, check = conv_case(env, c, batch, rng)
                checks = check()
                ok = all(rel <= REL_TOL and math.isfinite(err) for _, err, rel in checks)
                samples = time_sides(env, sides, cfg, cfg.repeat, cfg.min_time,
                                     cfg.case_budget, cfg.warmup)
            except Exception as e:  # noqa: BLE001 - recorded, the other layers still run
                _report_error(errors, f"conv/{c.name}", e)
                complete = False
                continue
            finally:
                torch.backends.cudnn.allow_tf32 = old
            ms = {k: _ms(v) for k, v in samples.items()}
            worst = max(checks, key=lambda r: r[2])
            flag = "" if ok else "  MISMATCH"
            if not ok:
                mismatches.append(f"conv/{c.name}")
            tflops = c.flops_fwd_bwd(batch) / (ms["tfe"] * 1e-3) / 1e12
            print(f"{c.name:22s} {c.label:26s} {c.count:2d} {ms['tfe']:9.3f} "
                  f"{ms['cudnn_tf32']:9.3f} {ms['cudnn_fp32']:9.3f} "
                  f"{ms['tfe'] / ms['cudnn_tf32']:8.2f} {ms['tfe'] / ms['cudnn_fp32']:8.2f} "
                  f"{tflops:11.2f}  {worst[0]} {worst[2]:.1e}{flag}", flush=True)
            for k in tot:
                tot[k] += c.count * ms[k]
            rows.append(dict(
                net=net, name=c.name, shape=c.label, count=c.count, batch=batch,
                flops_fwd_bwd=c.flops_fwd_bwd(batch), needs_dx=c.needs_dx, bias=c.bias,
                tfe_ms=ms["tfe"], cudnn_tf32_ms=ms["cudnn_tf32"], cudnn_fp32_ms=ms["cudnn_fp32"],
                ratio_tfe_over_cudnn_tf32=ms["tfe"] / ms["cudnn_tf32"],
                ratio_tfe_over_cudnn_fp32=ms["tfe"] / ms["cudnn_fp32"],
                tfe_tflops=tflops,
                samples_ms={k: [t * 1e3 for t in v] for k, v in samples.items()},
                check={n: {"max_abs_err": e, "rel_err": r} for n, e, r in checks},
                check_ok=ok))
            env.empty_caches()
        if tot["tfe"] > 0:
            print(f"{'TOTAL (x count)':22s} {'':26s} {'':2s} {tot['tfe']:9.3f} "
                  f"{tot['cudnn_tf32']:9.3f} {tot['cudnn_fp32']:9.3f} "
                  f"{tot['tfe'] / tot['cudnn_tf32']:8.2f} {tot['tfe'] / tot['cudnn_fp32']:8.2f}"
                  + ("" if complete else "   (incomplete: some layers failed)"), flush=True)
            totals[net] = dict(
                tfe_ms=tot["tfe"], cudnn_tf32_ms=tot["cudnn_tf32"],
                cudnn_fp32_ms=tot["cudnn_fp32"],
                ratio_tfe_over_cudnn_tf32=tot["tfe"] / tot["cudnn_tf32"],
                ratio_tfe_over_cudnn_fp32=tot["tfe"] / tot["cudnn_fp32"], complete=complete)
    results["conv"] = rows
    results["conv_totals"] = totals


# ---------------------------------------------------------------------------------------------
# training-step section


def make_tfe_model(name):
    """A fresh tfe model on the CPU, seeded: the weights every variant starts from."""
    import tfe.random
    from tfe import models

    tfe.random.manual_seed(0)
    if name == "resnet18":
        return models.resnet18(num_classes=shapes.CLASSES)
    if name == "tfe18":
        return models.TFE(models.DeepID(NUM_IDENTITIES), models.resnet18(shapes.CLASSES),
                          shapes.CLASSES)
    raise ValueError(name)


def _tfe_groups(model):
    """The optimiser's parameter groups as the pipeline builds them (python/tfe/pipeline.py):
    TFE trains its identity branch at a lower rate; a ResNet has one group."""
    if hasattr(model, "parameter_groups"):
        ident, rest = model.parameter_groups()
        return [{"params": rest, "lr": LR}, {"params": ident, "lr": LR_IDENTITY}]
    return [{"params": model.parameters(), "lr": LR}]


def tfe_trainer(env, arch, state, use_graph):
    """(TrainStep, model): a fresh copy of the model on the device, its own optimiser."""
    from tfe import models, optim
    from tfe.step import TrainStep

    model = models.build(arch)
    model.load_state_dict(state)
    model.to(env.device).train()
    opt = optim.SGD(_tfe_groups(model), lr=LR, **SGD)
    return TrainStep(model, opt, use_graph=use_graph), model


def torch_trainer(env, arch, state, tfe_model, dtype=None):
    """(model, optimiser) of the PyTorch mirror with the same weights and the same groups."""
    import torch_models

    torch = env.torch
    model = torch_models.mirror(tfe_model, env.device)
    torch_models.load_tfe_state(model, state)
    if dtype is not None:
        model = model.to(dtype)
    model.train()
    groups = [{"params": torch_models.named_for(tfe_model, model, g["params"]), "lr": g["lr"]}
              for g in _tfe_groups(tfe_model)]
    return model, torch.optim.SGD(groups, lr=LR, **SGD)


def torch_eager_step(env, model, opt, x, y, dtype=None):
    torch = env.torch
    F = torch.nn.functional

    def step():
        xb = torch.from_numpy(x).to(env.device)
        if dtype is not None:
            xb = xb.to(dtype)
        yb = torch.from_numpy(y).to(env.device)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_graph_step(env, model, opt, x, y):
    """The whole step captured once into a torch.cuda.CUDAGraph (the recipe of PyTorch's
    "whole network capture": warm-up on a side stream so that the optimiser's momentum
    buffers and cuDNN's algorithm choices exist, grads set to None before the capture so
    that backward allocates them from the graph's pool); each call copies the batch into
    the static inputs and replays."""
    torch = env.torch
    F = torch.nn.functional
    sx = torch.from_numpy(x).to(env.device)
    sy = torch.from_numpy(y).to(env.device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(sx), sy).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    # The capture runs on the warm-up stream, whose library handles and workspaces exist by
    # now; errors are checked for this thread only, so nothing tfe's runtime might do on
    # another thread can invalidate the capture.
    with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
        static_loss = F.cross_entropy(model(sx), sy)
        static_loss.backward()
        opt.step()
    hx, hy = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        sx.copy_(hx)
        sy.copy_(hy)
        graph.replay()
        return static_loss

    step.graph = graph  # kept alive with the closure
    return step


def step_section(env, cfg, batch, results, errors):
    import tfe.step

    torch = env.torch
    torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch,) + shapes.IMAGE).astype(np.float32)
    y = rng.integers(0, shapes.CLASSES, batch).astype(np.int64)
    # past the graph recording (step EAGER_WARMUP_STEPS + 1); no recording on the CPU
    warmup = tfe.step.EAGER_WARMUP_STEPS + 2 if env.cuda else cfg.warmup
    out = {}
    for name in ("resnet18", "tfe18"):
        print(f"\n== training step, {name}, batch {batch} ==", flush=True)
        base = make_tfe_model(name)
        arch, state = base.arch, base.state_dict()
        sides, keep, notes = [], [], {}
        default_tf32 = torch.backends.cudnn.allow_tf32

        def add(label, build, setup=None, sync=None):
            try:
                fn = build()
            except Exception as e:  # noqa: BLE001 - this variant is skipped, not the others
                _report_error(errors, f"step/{name}/{label}", e)
                return
            sides.append(Side(label, fn, sync, setup))

        def tfe_side(use_graph):
            step, model = tfe_trainer(env, arch, state, use_graph)
            keep.append(step)
            return lambda: step(x, y)

        def torch_side(graph):
            model, opt = torch_trainer(env, arch, state, base)
            keep.append((model, opt))
            if graph:
                with tf32(torch, default_tf32):
                    return torch_graph_step(env, model, opt, x, y)
            return torch_eager_step(env, model, opt, x, y)

        set_default = lambda: setattr(torch.backends.cudnn, "allow_tf32", default_tf32)  # noqa
        set_strict = lambda: setattr(torch.backends.cudnn, "allow_tf32", False)  # noqa
        add("tfe_eager", lambda: tfe_side(False), sync=env.sync_tfe)
        add("tfe_graph", lambda: tfe_side(True), sync=env.sync_tfe)
        if not env.cuda:
            notes["tfe_graph"] = "on the CPU TrainStep runs eagerly"
        add("torch_eager", lambda: torch_side(False), set_default, env.sync_torch)
        add("torch_eager_fp32", lambda: torch_side(False), set_strict, env.sync_torch)
        if env.cuda:
            add("torch_graph", lambda: torch_side(True), set_default, env.sync_torch)
        else:
            notes["torch_graph"] = "skipped: needs CUDA"
        try:
            samples = time_sides(
                env, sides, cfg, cfg.step_repeat, cfg.step_min_time, cfg.step_budget, warmup,
                on_error=lambda label, e: _report_error(errors, f"step/{name}/{label}", e))
        except Exception as e:  # noqa: BLE001
            _report_error(errors, f"step/{name}/timing", e)
            samples = {}
        finally:
            torch.backends.cudnn.allow_tf32 = default_tf32
        ms = {k: _ms(v) for k, v in samples.items()}
        ref = ms.get("torch_eager")
        print(f"{'variant':18s} {'ms/step':>9s} {'images/s':>10s} {'speed-up vs torch eager':>24s}",
              flush=True)
        rows = {}
        for k, v in ms.items():
            up = ref / v if ref else None
            print(f"{k:18s} {v:9.3f} {batch / (v * 1e-3):10.0f} "
                  f"{(f'{up:.2f}' if up else '-'):>24s}" + (f"   ({notes[k]})" if k in notes
                                                            else ""), flush=True)
            rows[k] = dict(ms=v, images_per_s=batch / (v * 1e-3), speedup_vs_torch_eager=up,
                           samples_ms=[t * 1e3 for t in samples[k]])
        for k, note in notes.items():
            rows.setdefault(k, {})["note"] = note
        out[name] = dict(batch=batch, variants=rows)
        del sides, keep
        env.sync_all()
        env.empty_caches()
        try:
            out[name]["check"] = loss_check(
                env, arch, state, base, x, y,
                lambda label, e: _report_error(errors, f"check/{name}/{label}", e))
        except Exception as e:  # noqa: BLE001
            _report_error(errors, f"check/{name}", e)
        env.empty_caches()
    results["steps"] = out


def loss_check(env, arch, state, base, x, y, on_error):
    """Losses of STEPS_CHECKED identical steps from the same weights and batch: tfe eager,
    tfe through TrainStep with a graph (steps 1-2 eager, step 3 the first replay), PyTorch
    strict FP32 and PyTorch float64. A variant that fails is reported and left out."""
    torch = env.torch
    losses = {}

    def tfe_losses(use_graph):
        step, _ = tfe_trainer(env, arch, state, use_graph)
        return [step(x, y)[0].item() for _ in range(STEPS_CHECKED)]

    def torch_losses(dtype):
        model, opt = torch_trainer(env, arch, state, base, dtype)
        run = torch_eager_step(env, model, opt, x, y, dtype)
        with tf32(torch, False):
            return [run().item() for _ in range(STEPS_CHECKED)]

    for label, fn in (("tfe_eager", lambda: tfe_losses(False)),
                      ("tfe_graph", lambda: tfe_losses(True)),
                      ("torch_fp32", lambda: torch_losses(None)),
                      ("torch_fp64", lambda: torch_losses(torch.float64))):
        try:
            losses[label] = fn()
        except Exception as e:  # noqa: BLE001
            on_error(label, e)
        env.sync_all()

    def rel(a, b):
        if a not in losses or b not in losses:
            return None
        return max(abs(p - q) / max(abs(q), 1e-30) for p, q in zip(losses[a], losses[b]))

    d = {f"{a}_vs_{b}": rel(a, b) for a, b in (
        ("tfe_graph", "torch_fp32"), ("tfe_eager", "torch_fp32"), ("tfe_graph", "tfe_eager"),
        ("tfe_graph", "torch_fp64"), ("tfe_eager", "torch_fp64"), ("torch_fp32", "torch_fp64"))}
    f = lambda v: "-" if v is None else f"{v:.1e}"  # noqa: E731
    print(f"loss check, {STEPS_CHECKED} steps from the same weights and batch: max rel diff "
          f"tfe vs torch FP32 {f(d['tfe_graph_vs_torch_fp32'])} (graph), "
          f"{f(d['tfe_eager_vs_torch_fp32'])} (eager); vs torch float64: "
          f"tfe {f(d['tfe_graph_vs_torch_fp64'])}, torch FP32 {f(d['torch_fp32_vs_torch_fp64'])}",
          flush=True)
    print("  losses: " + "; ".join(f"{k} " + " ".join(f"{v:.6f}" for v in vals)
                                   for k, vals in losses.items()), flush=True)
    return {"steps": STEPS_CHECKED, "losses": losses, "max_rel_diff": d}


# ---------------------------------------------------------------------------------------------
# summary


def summary_lines(meta, results, errors, mismatches):
    lines = [f"device {meta['device_name']} | torch {meta['torch_version']} (CUDA "
             f"{meta['torch_cuda']}, cuDNN {meta['cudnn_version']}) | tfe {meta['tfe_version']}"
             f" | batch {meta['batch']}{' | QUICK' if meta['quick'] else ''}"]
    for name, r in results.get("steps", {}).items():
        v = r["variants"]

        def fmt(k):
            if "ms" not in v.get(k, {}):
                return f"{k} -"
            up = v[k].get("speedup_vs_torch_eager")
            return f"{k} {v[k]['ms']:.2f}" + (f" (x{up:.2f})" if up and k != "torch_eager" else "")

        lines.append(f"{name:8s} ms/step: " + ", ".join(
            fmt(k) for k in ("tfe_eager", "tfe_graph", "torch_eager", "torch_eager_fp32",
                             "torch_graph")))
        chk = r.get("check")
        if chk:
            d = chk["max_rel_diff"]
            f = lambda v: "-" if v is None else f"{v:.1e}"  # noqa: E731
            lines.append(f"{'':8s} loss, {chk['steps']} steps: max rel diff tfe (graph) vs "
                         f"torch FP32 {f(d['tfe_graph_vs_torch_fp32'])}; vs float64: tfe "
                         f"{f(d['tfe_graph_vs_torch_fp64'])}, torch FP32 "
                         f"{f(d['torch_fp32_vs_torch_fp64'])}")
    for net, t in results.get("conv_totals", {}).items():
        lines.append(f"conv {net} total (x count): tfe {t['tfe_ms']:.3f} ms, tfe/cuDNN FP32 "
                     f"{t['ratio_tfe_over_cudnn_fp32']:.2f}, tfe/cuDNN TF32 "
                     f"{t['ratio_tfe_over_cudnn_tf32']:.2f}"
                     + ("" if t["complete"] else " (incomplete)"))
    conv = results.get("conv", [])
    if conv:
        w = max(conv, key=lambda r: r["ratio_tfe_over_cudnn_fp32"])
        lines.append(f"worst conv layer: {w['net']} {w['name']} ({w['shape']}) tfe/cuDNN FP32 "
                     f"{w['ratio_tfe_over_cudnn_fp32']:.2f} ({w['tfe_ms']:.3f} vs "
                     f"{w['cudnn_fp32_ms']:.3f} ms), tfe/TF32 "
                     f"{w['ratio_tfe_over_cudnn_tf32']:.2f}")
    if errors or mismatches:
        lines.append(f"PROBLEMS: {len(errors)} error(s) "
                     + ", ".join(e["where"] for e in errors)
                     + (f"; MISMATCH {', '.join(mismatches)}" if mismatches else ""))
    return lines


# ---------------------------------------------------------------------------------------------
# main


def _fail(msg, code=2):
    print(f"gpu_bench.py: {msg}", file=sys.stderr, flush=True)
    return code


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions (under a minute on an H100 instead of about 1.5)")
    ap.add_argument("--out", metavar="FILE.json", help="write all figures to FILE (atomically)")
    ap.add_argument("--device", default="cuda:0",
                    help="cuda:N (default cuda:0), or cpu: a smoke test of every code path "
                         "with a tiny batch and one repetition (its times mean nothing)")
    ap.add_argument("--batch", type=int, default=None,
                    help=f"batch size (default {shapes.BATCHES[0]}; 4 with --device cpu)")
    ap.add_argument("--only", default="conv,step", help="sections to run: conv, step")
    args = ap.parse_args(argv)
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    if not sections <= {"conv", "step"}:
        ap.error(f"unknown section(s) in --only: {sorted(sections - {'conv', 'step'})}")
    cpu = args.device == "cpu"
    if not cpu and not args.device.startswith("cuda"):
        ap.error("--device must be cuda, cuda:N or cpu")
    batch = args.batch or (4 if cpu else shapes.BATCHES[0])
    if batch < 2:
        ap.error("--batch must be >= 2 (batch norm in training mode)")
    cfg = SMOKE if cpu else (QUICK if args.quick else NORMAL)

    try:
        import torch
    except ImportError as e:
        return _fail(f"cannot import torch ({e}); install PyTorch with CUDA")
    try:
        import tfe
    except ImportError as e:
        return _fail(f"cannot import tfe ({e}); build and install it first (pip install .)")
    if not cpu:
        if not tfe.cuda.is_available():
            return _fail(f"no GPU for tfe: {tfe.cuda.unavailable_reason() or 'none found'}")
        if not torch.cuda.is_available():
            return _fail(f"no GPU for torch {torch.__version__} (CUDA build: "
                         f"{torch.version.cuda or 'no'})")
        index = int(args.device.split(":")[1]) if ":" in args.device else 0
        if index >= min(tfe.cuda.device_count(), torch.cuda.device_count()):
            return _fail(f"no device {args.device}")
        device = f"cuda:{index}"
        torch.cuda.set_device(index)
    else:
        device = "cpu"
        # one thread each: the smoke test only has to run, and may share the machine
        torch.set_num_threads(1)
        tfe.set_num_threads(1)

    env = Env(tfe, torch, device)
    if env.cuda:
        device_name = torch.cuda.get_device_name(env.index)
        cudnn_version = torch.backends.cudnn.version()
    else:
        device_name, cudnn_version = f"CPU ({platform.processor() or platform.machine()})", None
    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=device, device_name=device_name, tfe_version=tfe.__version__,
        torch_version=torch.__version__, torch_cuda=torch.version.cuda,
        cudnn_version=cudnn_version,
        python=platform.python_version(), numpy=np.__version__, batch=batch, quick=args.quick,
        smoke_test_on_cpu=cpu, cudnn_benchmark=True,
        cudnn_allow_tf32_default=torch.backends.cudnn.allow_tf32,
        matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
        config=vars(cfg), sgd=dict(lr=LR, lr_identity=LR_IDENTITY, **SGD), rel_tol=REL_TOL,
        timing="median over repetitions of (sync; inner calls; sync) / inner, perf_counter")
    if env.cuda:
        props = torch.cuda.get_device_properties(env.index)
        meta.update(sm_count=props.multi_processor_count,
                    total_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}")
    print(f"tfe {meta['tfe_version']} vs torch {meta['torch_version']} on {meta['device_name']}"
          f" ({device}) | batch {batch} | {'QUICK' if args.quick else 'normal'} repetitions"
          + (" | CPU SMOKE TEST: the times below mean nothing" if cpu else ""), flush=True)
    print("conv ratios: tfe ms / cuDNN ms (> 1: tfe slower); step speed-ups: torch eager ms / "
          "variant ms (> 1: faster than torch eager)", flush=True)

    results, errors, mismatches = {}, [], []
    if "conv" in sections:
        conv_section(env, cfg, batch, results, errors, mismatches)
    if "step" in sections:
        step_section(env, cfg, batch, results, errors)
    meta["wall_s"] = round(env.elapsed(), 1)

    lines = summary_lines(meta, results, errors, mismatches)
    if args.out:
        try:
            write_json_atomic(args.out, dict(meta=meta, summary=lines, errors=errors,
                                             mismatches=mismatches, **results))
            lines.append(f"wrote {args.out}")
        except OSError as e:
            errors.append({"where": "json", "error": _err(e)})
            lines.append(f"could not write {args.out}: {_err(e)}")
    lines.append(f"wall {meta['wall_s']:.0f} s")
    print("\n== summary ==")
    for line in lines:
        print(line)
    sys.stdout.flush()
    if errors:
        return 1
    return 3 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
