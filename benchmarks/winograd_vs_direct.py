#!/usr/bin/env python
"""Winograd F(2x2, 3x3) against the direct implicit-GEMM convolution, per ResNet18 3x3
stride-1 layer, in one process (csrc/conv/winograd_train.cpp).

Per layer: the forward, the backward (dx as a training step needs it, dw accumulated) and
forward + backward, each timed with TFE_CONV_WINOGRAD=0 (direct) and =1 (Winograd forward
and dx, the weight gradient direct: what =auto runs where it takes Winograd), and the
backward without dx (the weight gradient alone) with =0 and =2 (Winograd dw); conv2d reads
the variable on every call. The two sides alternate measurement by measurement (order
flipped every repetition, as benchmarks/compare_torch.py does) so that a shared machine's
noise hits both alike; the figures are medians, and the ratio direct time / Winograd time
(above 1 Winograd is faster) is what to compare across runs. The input gradient alone is
estimated as the backward minus the direct backward without dx (medians, so the noisiest
column). The last column says which path the measured dispatch takes for the layer (TFE_CONV_WINOGRAD=auto;
unset, training is direct).

Usage:
  python benchmarks/winograd_vs_direct.py [--threads 2] [--batch 128] [--repeat 9]
      [--min-time 0.2] [--kernel avx512|avx2|generic]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402
from compare_torch import time_pair  # noqa: E402


def _with_env(value, fn):
    def run():
        os.environ["TFE_CONV_WINOGRAD"] = value
        return fn()
    return run


def _default_is_winograd(native, x, w):
    """Whether the measured dispatch (TFE_CONV_WINOGRAD=auto) takes Winograd for this layer:
    its forward bits equal the forced Winograd's (not the direct's)."""
    outs = {}
    for env in ("0", "1", "auto"):
        os.environ["TFE_CONV_WINOGRAD"] = env
        outs[env] = np.array(native.conv2d_forward(x, w, None, 1, 1))
    return np.array_equal(outs["auto"], outs["1"]) and not np.array_equal(outs["0"], outs["1"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--settle", type=float, default=0.0)
    ap.add_argument("--kernel", choices=("avx512", "avx2", "generic"),
                    help="TFE_GEMM_KERNEL for this run (must be set before tfe loads)")
    args = ap.parse_args()
    if args.kernel:
        os.environ["TFE_GEMM_KERNEL"] = args.kernel
    import tfe
    from tfe import _native as native

    tfe.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.batch
    print(f"tfe gemm kernel {native.gemm_kernel()} | threads {native.get_num_threads()} | "
          f"batch {n} | median of {args.repeat}; ratio = direct time / Winograd time")
    print(f"{'layer':<18}{'fwd':>7}{'dx':>7}{'dw':>7}{'bwd':>7}{'f+b':>7}   "
          f"{'direct f+b ms':>13}{'wino f+b ms':>12}  default")
    conv_list = [c for c in shapes.RESNET18_CONVS if c.k == 3 and c.stride == 1 and c.pad == 1]
    for c in conv_list:
        x = rng.standard_normal(c.x_shape(n)).astype(np.float32)
        w = (rng.standard_normal(c.w_shape()) * (c.cin * 9) ** -0.5).astype(np.float32)
        dy = rng.standard_normal(c.y_shape(n)).astype(np.float32)
        dw = np.zeros_like(w)

        def fwd():
            native.conv2d_forward(x, w, None, 1, 1)

        def bwd():
            native.conv2d_backward(dy, x, w, 1, 1, dw=dw, compute_db=False,
                                   compute_dx=c.needs_dx)

        def bwd_nodx():
            native.conv2d_backward(dy, x, w, 1, 1, dw=dw, compute_db=False, compute_dx=False)

        def both():
            fwd()
            bwd()

        med = {}
        for name, fn, env in (("fwd", fwd, "1"), ("bwd", bwd, "1"), ("f+b", both, "1"),
                              ("nodx", bwd_nodx, "2")):
            td, tw = time_pair(_with_env("0", fn), _with_env(env, fn), args.repeat,
                               args.min_time, args.settle)
            med[name] = (statistics.median(td), statistics.median(tw))
        dxd = med["bwd"][0] - med["nodx"][0]
        dxw = med["bwd"][1] - med["nodx"][0]  # =1 computes dw directly
        dx_ratio = f"{dxd / dxw:7.2f}" if c.needs_dx and dxw > 0 else f"{'-':>7}"
        r = {k: v[0] / v[1] for k, v in med.items()}
        default = "winograd" if _default_is_winograd(native, x, w) else "direct"
        print(f"{c.name:<18}{r['fwd']:7.2f}{dx_ratio}{r['nodx']:7.2f}{r['bwd']:7.2f}"
              f"{r['f+b']:7.2f}   {med['f+b'][0] * 1e3:13.2f}{med['f+b'][1] * 1e3:12.2f}  "
              f"{default}", flush=True)
    os.environ.pop("TFE_CONV_WINOGRAD", None)


if __name__ == "__main__":
    main()
