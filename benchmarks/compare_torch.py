#!/usr/bin/env python
"""tfe vs PyTorch (CPU, eager) side by side, one process, same thread count.

For every ResNet18 conv shape (and DeepID's), forward + backward as one training step pays
it: tfe's native.conv2d_forward + native.conv2d_backward (dw/db accumulated, dx unless the
layer's input is the image) against F.conv2d + torch.autograd.grad of the same tensors.
Then the other ops of a training step (batch norm, the residual epilogue, ReLU, add,
max pool, GAP, linear, dropout, concat, cross-entropy, the SGD step, the TFE head), and
tfe's GEMM core against torch.mm with the measured FMA peak of the machine.

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


def _keep_off_relu_kink(x, sc, gamma, beta, margin=1e-3):
    """Move shortcut values so that no pre-activation bn(x) + sc lies within `margin` of 0.

    Where it does, float32 rounding in tfe and torch may land on opposite sides of the ReLU
    kink and the gradient of that element differs by the whole dy: a tie, not an error.
    Among millions of random elements a few land within 1e-7 of 0, so without this the
    check would flag correct kernels now and then. In place; timing is unaffected.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=axes), x64.var(axis=axes)
    z = ((x64 - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + shapes.EPS)
         * gamma.reshape(shape) + beta.reshape(shape) + sc)
    near = np.abs(z) < margin
    sc[near] += np.where(z[near] >= 0, 2 * margin, -2 * margin).astype(np.float32)


def make_cases(native, torch, batch, rng, sections):
    F = torch.nn.functional
    grad = torch.autograd.grad
    eps, mom = shapes.EPS, shapes.MOMENTUM

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def leaf(a, requires_grad=True):
        return torch.from_numpy(a).requires_grad_(requires_grad)

    cases = []

    # ---- conv2d --------------------------------------------------------------------------
    def conv_case(section, c):
        x = randn(*c.x_shape(batch))
        w = randn(*c.w_shape(), scale=(c.cin * c.k * c.k) ** -0.5)
        b = randn(c.cout) if c.bias else None
        dy = randn(*c.y_shape(batch))
        dw, db = np.zeros_like(w), np.zeros(c.cout, np.float32)
        tx, tw = leaf(x, c.needs_dx), leaf(w)
        tb = leaf(b) if c.bias else None
        tdy = torch.from_numpy(dy)
        wrt = ([tx] if c.needs_dx else []) + [tw] + ([tb] if c.bias else [])

        def tfe_step():
            native.conv2d_forward(x, w, b, c.stride, c.pad)
            native.conv2d_backward(dy, x, w, c.stride, c.pad, dw=dw, db=db,
                                   compute_dx=c.needs_dx)

        def torch_step():
            y = F.conv2d(tx, tw, tb, c.stride, c.pad)
            grad(y, wrt, tdy)

        def check():
            y = native.conv2d_forward(x, w, b, c.stride, c.pad)
            dx_, dw_, db_ = native.conv2d_backward(dy, x, w, c.stride, c.pad,
                                                   compute_dx=c.needs_dx)
            ty = F.conv2d(tx, tw, tb, c.stride, c.pad)
            g = dict(zip(["dx"] * c.needs_dx + ["dw"] + ["db"] * c.bias, grad(ty, wrt, tdy)))
            out = [("y", y, ty), ("dw", dw_, g["dw"])]
            if c.needs_dx:
                out.append(("dx", dx_, g["dx"]))
            if c.bias:
                out.append(("db", db_, g["db"]))
            return out

        cases.append(Case(section, c.name, c.label, c.count, c.flops_fwd_bwd(batch), "GFLOP/s",
                          tfe_step, torch_step, check))

    if "conv" in sections:
        for c in shapes.RESNET18_CONVS:
            conv_case("conv", c)
        for c in shapes.DEEPID_CONVS:
            conv_case("conv-deepid", c)

    if "ops" not in sections:
        return cases

    # ---- batch norm (train forward + backward) ----------------------------------------------
    def bn_state(c):
        return (1 + 0.1 * randn(c), 0.1 * randn(c), np.zeros(c, np.float32),
                np.ones(c, np.float32))

    for act in shapes.BN_ACTS + [shapes.Act("bn1d_224", shapes.TFE_HEAD.d, count=0)]:
        if act.h * act.w == 1 and batch < 2:
            continue  # training-mode BN1d needs a batch > 1
        x, dy = randn(*act.shape(batch)), randn(*act.shape(batch))
        g, b, rm, rv = bn_state(act.c)
        dg, dbeta = np.zeros_like(g), np.zeros_like(b)
        tx, tg, tb = leaf(x), leaf(g.copy()), leaf(b.copy())
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        tdy = torch.from_numpy(dy)

        def tfe_step(x=x, dy=dy, g=g, b=b, rm=rm, rv=rv, dg=dg, dbeta=dbeta):
            _, m, s = native.batchnorm_forward_train(x, g, b, rm, rv, eps, mom)
            native.batchnorm_backward(dy, x, g, m, s, dgamma=dg, dbeta=dbeta)

        def torch_step(tx=tx, tg=tg, tb=tb, trm=trm, trv=trv, tdy=tdy):
            y = F.batch_norm(tx, trm, trv, tg, tb, True, mom, eps)
            grad(y, (tx, tg, tb), tdy)

        def check(x=x, dy=dy, g=g, b=b, tx=tx, tg=tg, tb=tb, tdy=tdy, c=act.c):
            rm_, rv_ = np.zeros(c, np.float32), np.ones(c, np.float32)
            y, m, s = native.batchnorm_forward_train(x, g, b, rm_, rv_, eps, mom)
            dx, dg_, db_ = native.batchnorm_backward(dy, x, g, m, s)
            trm_, trv_ = torch.zeros(c), torch.ones(c)
            ty = F.batch_norm(tx, trm_, trv_, tg, tb, True, mom, eps)
            tdx, tdg, tdb = grad(ty, (tx, tg, tb), tdy)
            return [("y", y, ty), ("running_var", rv_, trv_), ("dx", dx, tdx),
                    ("dgamma", dg_, tdg), ("dbeta", db_, tdb)]

        cases.append(Case("batchnorm", act.name, str(act.shape(batch)), act.count,
                          shapes.BYTES_PER_ELEM["batchnorm"] * act.numel(batch), "GB/s",
                          tfe_step, torch_step, check))

    # ---- residual epilogue relu(bn(x) + shortcut) vs torch bn + add + relu ------------------
    for act in shapes.RESIDUAL_ACTS:
        x, sc, dy = (randn(*act.shape(batch)) for _ in range(3))
        g, b, rm, rv = bn_state(act.c)
        _keep_off_relu_kink(x, sc, g, b)
        dg, dbeta = np.zeros_like(g), np.zeros_like(b)
        tx, ts, tg, tb = leaf(x), leaf(sc), leaf(g.copy()), leaf(b.copy())
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        tdy = torch.from_numpy(dy)

        def tfe_step(x=x, sc=sc, dy=dy, g=g, b=b, rm=rm, rv=rv, dg=dg, dbeta=dbeta):
            y, m, s = native.residual_forward_train(x, sc, g, b, rm, rv, eps, mom)
            native.residual_backward(dy, y, x, g, m, s, dgamma=dg, dbeta=dbeta)

        def torch_fwd(tx, ts, tg, tb, trm, trv):
            return F.relu(F.batch_norm(tx, trm, trv, tg, tb, True, mom, eps) + ts)

        def torch_step(tx=tx, ts=ts, tg=tg, tb=tb, trm=trm, trv=trv, tdy=tdy):
            grad(torch_fwd(tx, ts, tg, tb, trm, trv), (tx, ts, tg, tb), tdy)

        def check(x=x, sc=sc, dy=dy, g=g, b=b, tx=tx, ts=ts, tg=tg, tb=tb, tdy=tdy, c=act.c):
            rm_, rv_ = np.zeros(c, np.float32), np.ones(c, np.float32)
            y, m, s = native.residual_forward_train(x, sc, g, b, rm_, rv_, eps, mom)
            dx, ds, dg_, db_ = native.residual_backward(dy, y, x, g, m, s)
            ty = torch_fwd(tx, ts, tg, tb, torch.zeros(c), torch.ones(c))
            tdx, tds, tdg, tdb = grad(ty, (tx, ts, tg, tb), tdy)
            return [("y", y, ty), ("dx", dx, tdx), ("dshortcut", ds, tds), ("dgamma", dg_, tdg),
                    ("dbeta", db_, tdb)]

        cases.append(Case("residual", act.name, str(act.shape(batch)), act.count,
                          shapes.BYTES_PER_ELEM["residual"] * act.numel(batch), "GB/s",
                          tfe_step, torch_step, check))

    # ---- relu and add ---------------------------------------------------------------------
    for act in shapes.RELU_ACTS:
        x, dy = randn(*act.shape(batch)), randn(*act.shape(batch))
        tx, tdy = leaf(x), torch.from_numpy(dy)

        def tfe_step(x=x, dy=dy):
            native.relu_backward(dy, native.relu_forward(x))

        def torch_step(tx=tx, tdy=tdy):
            grad(F.relu(tx), tx, tdy)

        def check(x=x, dy=dy, tx=tx, tdy=tdy):
            y = native.relu_forward(x)
            ty = F.relu(tx)
            return [("y", y, ty), ("dx", native.relu_backward(dy, y), grad(ty, tx, tdy)[0])]

        cases.append(Case("relu", act.name, str(act.shape(batch)), act.count,
                          shapes.BYTES_PER_ELEM["relu"] * act.numel(batch), "GB/s",
                          tfe_step, torch_step, check))

    for act in shapes.ADD_ACTS:
        a, b = randn(*act.shape(batch)), randn(*act.shape(batch))
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        cases.append(Case("add", act.name, str(act.shape(batch)), act.count,
                          shapes.BYTES_PER_ELEM["add"] * act.numel(batch), "GB/s",
                          lambda a=a, b=b: native.add_forward(a, b),
                          lambda ta=ta, tb=tb: torch.add(ta, tb),
                          lambda a=a, b=b, ta=ta, tb=tb: [("y", native.add_forward(a, b),
                                                           ta + tb)]))

    # ---- max pool (DeepID) ----------------------------------------------------------------
    for p in shapes.DEEPID_POOLS:
        x, dy = randn(batch, p.c, p.h, p.w), randn(batch, p.c, p.ho, p.wo)
        tx, tdy = leaf(x), torch.from_numpy(dy)

        def tfe_step(x=x, dy=dy, p=p):
            _, am = native.maxpool2d_forward(x, p.k, p.stride, p.pad)
            native.maxpool2d_backward(dy, am, p.h, p.w)

        def torch_step(tx=tx, tdy=tdy, p=p):
            grad(F.max_pool2d(tx, p.k, p.stride, p.pad), tx, tdy)

        def check(x=x, dy=dy, tx=tx, tdy=tdy, p=p):
            y, am = native.maxpool2d_forward(x, p.k, p.stride, p.pad)
            ty = F.max_pool2d(tx, p.k, p.stride, p.pad)
            return [("y", y, ty), ("dx", native.maxpool2d_backward(dy, am, p.h, p.w),
                                   grad(ty, tx, tdy)[0])]

        cases.append(Case("maxpool", p.name, f"{p.c}x{p.h}x{p.w} k{p.k}s{p.stride}", p.count,
                          p.bytes_fwd_bwd(batch), "GB/s", tfe_step, torch_step, check))

    # ---- global average pooling -----------------------------------------------------------
    gap = shapes.GAP_ACT
    x, dy = randn(*gap.shape(batch)), randn(batch, gap.c)
    tx, tdy = leaf(x), torch.from_numpy(dy)

    def gap_tfe(x=x, dy=dy, gap=gap):
        native.gap_forward(x)
        native.gap_backward(dy, gap.h, gap.w)

    def gap_torch(tx=tx, tdy=tdy):
        grad(F.adaptive_avg_pool2d(tx, 1).flatten(1), tx, tdy)

    def gap_check(x=x, dy=dy, tx=tx, tdy=tdy, gap=gap):
        ty = F.adaptive_avg_pool2d(tx, 1).flatten(1)
        return [("y", native.gap_forward(x), ty),
                ("dx", native.gap_backward(dy, gap.h, gap.w), grad(ty, tx, tdy)[0])]

    cases.append(Case("gap", gap.name, str(gap.shape(batch)), gap.count,
                      shapes.BYTES_PER_ELEM["gap"] * gap.numel(batch), "GB/s",
                      gap_tfe, gap_torch, gap_check))

    # ---- linear ---------------------------------------------------------------------------
    for lin in shapes.LINEARS:
        x, dy = randn(batch, lin.fin), randn(batch, lin.fout)
        w, b = randn(lin.fout, lin.fin, scale=lin.fin ** -0.5), randn(lin.fout)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        tx, tw, tb, tdy = leaf(x), leaf(w), leaf(b), torch.from_numpy(dy)

        def tfe_step(x=x, w=w, b=b, dy=dy, dw=dw, db=db):
            native.linear_forward(x, w, b)
            native.linear_backward(dy, x, w, dw=dw, db=db)

        def torch_step(tx=tx, tw=tw, tb=tb, tdy=tdy):
            grad(F.linear(tx, tw, tb), (tx, tw, tb), tdy)

        def check(x=x, w=w, b=b, dy=dy, tx=tx, tw=tw, tb=tb, tdy=tdy):
            ty = F.linear(tx, tw, tb)
            tdx, tdw, tdb = grad(ty, (tx, tw, tb), tdy)
            dx, dw_, db_ = native.linear_backward(dy, x, w)
            return [("y", native.linear_forward(x, w, b), ty), ("dx", dx, tdx), ("dw", dw_, tdw),
                    ("db", db_, tdb)]

        cases.append(Case("linear", lin.name, f"{lin.fin}->{lin.fout}", lin.count,
                          lin.flops_fwd_bwd(batch), "GFLOP/s", tfe_step, torch_step, check))

    # ---- dropout: different RNGs, so the check is tfe's own consistency -------------------
    act, p_drop = shapes.DROPOUT, shapes.DROPOUT_P
    x, dy = randn(*act.shape(batch)), randn(*act.shape(batch))
    tx, tdy = leaf(x), torch.from_numpy(dy)

    def drop_tfe(x=x, dy=dy):
        _, mask = native.dropout_forward(x, p_drop, 7)
        native.dropout_backward(dy, mask, p_drop)

    def drop_torch(tx=tx, tdy=tdy):
        grad(F.dropout(tx, p_drop, True), tx, tdy)

    def drop_check(x=x, dy=dy):
        # torch draws other random numbers, so tfe is checked against its own mask:
        # y = x * mask / (1 - p), dx = dy * mask / (1 - p), kept fraction within 5 sigma of 1 - p
        y, mask = native.dropout_forward(x, p_drop, 7)
        m = np.asarray(mask).astype(np.float32)
        keep, q = float(m.mean()), 1 - p_drop
        near = abs(keep - q) <= 5 * math.sqrt(q * (1 - q) / m.size)
        return [("y=x*mask/(1-p)", y, x * m / np.float32(q)),
                ("dx=dy*mask/(1-p)", native.dropout_backward(dy, mask, p_drop),
                 dy * m / np.float32(q)),
                (f"kept {keep:.4f} ~ {q:g}", np.array([float(near)]), np.array([1.0]))]

    cases.append(Case("dropout", act.name, str(act.shape(batch)), 1,
                      shapes.DROPOUT_BYTES_PER_ELEM * act.numel(batch), "GB/s",
                      drop_tfe, drop_torch, drop_check))

    # ---- concat ---------------------------------------------------------------------------
    for cat in shapes.CONCATS:
        xs = [randn(batch, c) for c in cat.sizes]
        dy = randn(batch, sum(cat.sizes))
        txs, tdy = [leaf(a) for a in xs], torch.from_numpy(dy)
        sizes = list(cat.sizes)

        def tfe_step(xs=xs, dy=dy, sizes=sizes):
            native.concat_forward(xs)
            native.concat_backward(dy, sizes)

        def torch_step(txs=txs, tdy=tdy):
            grad(torch.cat(txs, 1), txs, tdy)

        def check(xs=xs, dy=dy, sizes=sizes, txs=txs, tdy=tdy):
            ty = torch.cat(txs, 1)
            out = [("y", native.concat_forward(xs), ty)]
            for j, (a, ta) in enumerate(zip(native.concat_backward(dy, sizes), grad(ty, txs, tdy))):
                out.append((f"dx{j}", a, ta))
            return out

        cases.append(Case("concat", cat.name, "+".join(map(str, cat.sizes)), 1,
                          cat.bytes_fwd_bwd(batch), "GB/s", tfe_step, torch_step, check))

    # ---- cross-entropy --------------------------------------------------------------------
    k = shapes.CLASSES
    logits = randn(batch, k)
    labels = rng.integers(0, k, batch).astype(np.int64)
    tlog, tlab = leaf(logits), torch.from_numpy(labels)

    def ce_tfe():
        _, prob = native.cross_entropy_forward(logits, labels)
        native.cross_entropy_backward(prob, labels, 1.0)

    def ce_torch():
        grad(F.cross_entropy(tlog, tlab), tlog)

    def ce_check():
        loss, prob = native.cross_entropy_forward(logits, labels)
        tloss = F.cross_entropy(tlog, tlab)
        return [("loss", loss, tloss),
                ("dlogits", native.cross_entropy_backward(prob, labels, 1.0), grad(tloss, tlog)[0])]

    cases.append(Case("cross_entropy", shapes.CROSS_ENTROPY.name, f"[{batch},{k}]", 1,
                      shapes.F32 * 4 * batch * k, "GB/s", ce_tfe, ce_torch, ce_check))

    # ---- SGD over ResNet18's parameters ---------------------------------------------------
    lr, sm, wd = 1e-3, shapes.SGD_MOMENTUM, shapes.SGD_WEIGHT_DECAY
    p0 = [randn(*s) for s in shapes.RESNET18_PARAMS]
    g0 = [randn(*s, scale=1e-2) for s in shapes.RESNET18_PARAMS]

    def sgd_state():
        ps = [a.copy() for a in p0]
        bufs = [np.zeros_like(a) for a in p0]
        tps = [torch.from_numpy(a.copy()).requires_grad_(True) for a in p0]
        for tp, g in zip(tps, g0):
            tp.grad = torch.from_numpy(g.copy())
        opt = torch.optim.SGD(tps, lr=lr, momentum=sm, weight_decay=wd)
        return ps, bufs, tps, opt

    ps, bufs, tps, opt = sgd_state()

    def sgd_check():
        ps_, bufs_, tps_, opt_ = sgd_state()
        for _ in range(2):  # the second step exercises the momentum buffers
            native.sgd_step(ps_, g0, bufs_, lr, sm, wd, False)
            opt_.step()
        return [("params", np.concatenate([a.ravel() for a in ps_]),
                 torch.cat([t.detach().ravel() for t in tps_])),
                ("momentum_bufs", np.concatenate([a.ravel() for a in bufs_]),
                 torch.cat([opt_.state[t]["momentum_buffer"].ravel() for t in tps_]))]

    cases.append(Case("sgd", "sgd_resnet18",
                      f"{len(p0)} tensors, {shapes.RESNET18_PARAM_COUNT} floats",
                      1, shapes.SGD_BYTES_PER_PARAM * shapes.RESNET18_PARAM_COUNT, "GB/s",
                      lambda: native.sgd_step(ps, g0, bufs, lr, sm, wd, False), opt.step,
                      sgd_check))

    # ---- TFE head vs torch cat + BN1d + linear --------------------------------------------
    if batch >= 2:
        h = shapes.TFE_HEAD
        zi, ze, dl = randn(batch, h.di), randn(batch, h.de), randn(batch, h.o)
        g, b, rm, rv = bn_state(h.d)
        w, bias = randn(h.o, h.d, scale=h.d ** -0.5), randn(h.o)
        acc = dict(dgamma=np.zeros(h.d, np.float32), dbeta=np.zeros(h.d, np.float32),
                   dw=np.zeros((h.o, h.d), np.float32), db=np.zeros(h.o, np.float32))
        t = dict(zi=leaf(zi), ze=leaf(ze), g=leaf(g.copy()), b=leaf(b.copy()), w=leaf(w),
                 bias=leaf(bias))
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        tdl = torch.from_numpy(dl)
        wrt = (t["zi"], t["ze"], t["g"], t["b"], t["w"], t["bias"])

        def head_torch_fwd(trm, trv):
            z = F.batch_norm(torch.cat([t["zi"], t["ze"]], 1), trm, trv, t["g"], t["b"], True,
                             mom, eps)
            return F.linear(z, t["w"], t["bias"]), z

        def head_tfe():
            _, zh, m, s = native.tfe_head_forward_train(zi, ze, g, b, rm, rv, w, bias, eps, mom)
            native.tfe_head_backward(dl, zi, ze, zh, g, m, s, w, **acc)

        def head_torch():
            grad(head_torch_fwd(trm, trv)[0], wrt, tdl)

        def head_check():
            lg, zh, m, s = native.tfe_head_forward_train(
                zi, ze, g, b, np.zeros(h.d, np.float32), np.ones(h.d, np.float32), w, bias, eps,
                mom)
            got = native.tfe_head_backward(dl, zi, ze, zh, g, m, s, w)
            tl, tz = head_torch_fwd(torch.zeros(h.d), torch.ones(h.d))
            want = grad(tl, wrt, tdl)
            names = ["dzi", "dze", "dgamma", "dbeta", "dw", "db"]
            return [("logits", lg, tl), ("z_hat", zh, tz)] + list(zip(names, got, want))

        cases.append(Case("tfe_head", h.name, f"{h.di}+{h.de}->{h.o}", 1, h.flops_fwd_bwd(batch),
                          "GFLOP/s", head_tfe, head_torch, head_check))
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
    cases = make_cases(native, torch, args.batch, rng, sections)
    print("OpenMP runtimes loaded: " + (", ".join(_omp_runtimes()) or "none found"))
    for section, title in (("conv", "conv2d forward+backward, ResNet18"),
                           ("conv-deepid", "conv2d forward+backward, DeepID (own total)"),
                           ("batchnorm", "batch norm train forward+backward"),
                           ("residual", "residual relu(bn(x)+s) fwd+bwd vs torch bn+add+relu"),
                           ("relu", "relu forward+backward"),
                           ("add", "add forward"),
                           ("maxpool", "max pool 2x2 forward+backward (DeepID)"),
                           ("gap", "global average pool forward+backward"),
                           ("linear", "linear forward+backward"),
                           ("dropout", "dropout forward+backward (different RNGs; tfe checked "
                                       "against its own mask)"),
                           ("concat", "concat forward+backward"),
                           ("cross_entropy", "cross-entropy forward+backward"),
                           ("sgd", "SGD step (momentum, weight decay) vs torch.optim.SGD.step"),
                           ("tfe_head", "TFE head fwd+bwd vs torch cat + BN1d + linear")):
        run_section(title, [c for c in cases if c.section == section], args, results, mismatches)
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
