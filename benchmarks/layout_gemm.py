"""Why activations are NCHW: the convolution GEMM of each ResNet18 stage in both
orientations on tfe's GEMM core (1 thread, median of 200 calls).

NCHW puts the feature map (H*W = 2304 / 576 / 144) on the GEMM's wide N dimension, which
the register tile (48 or 24 floats wide) covers without waste; NHWC would put the 16-64
output channels there. Run: python benchmarks/layout_gemm.py
"""

import time

import numpy as np

import tfe
from tfe import _native as native


def gflops(rng, m, n, k, repeat=200):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    native.sgemm(a, b)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        native.sgemm(a, b)
        times.append(time.perf_counter() - t0)
    return 2.0 * m * n * k / np.median(times) / 1e9


def main():
    tfe.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"GEMM micro-kernel: {native.gemm_kernel()}, 1 thread")
    print(f"{'stage':24s}{'NCHW: M=C_out, N=H*W':>24s}{'NHWC: M=H*W, N=C_out':>24s}{'ratio':>8s}")
    for c, hw in ((16, 2304), (32, 576), (64, 144)):
        k = c * 9
        a, b = gflops(rng, c, hw, k), gflops(rng, hw, c, k)
        print(f"{c}->{c} 3x3, H*W={hw:<6d}{a:>18.1f} GF/s{b:>18.1f} GF/s{a / b:>8.2f}")


if __name__ == "__main__":
    main()
