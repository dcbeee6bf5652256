"""``python -m tfe``: what this installation is and what it can use."""

import argparse
import os

from . import __version__, _native, cuda


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tfe", description=__doc__)
    parser.add_argument("--peak", action="store_true",
                        help="also measure this machine's FMA peak (takes a second)")
    args = parser.parse_args()
    print(f"tfe {__version__}")
    print(f"  CPU threads      : {_native.get_num_threads()} "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    print(f"  GEMM micro-kernel: {_native.gemm_kernel()}")
    if cuda.is_available():
        print(f"  CUDA             : {cuda.device_count()} GPU(s)")
    else:
        print(f"  CUDA             : not available ({cuda.unavailable_reason()}; "
              f"backend {'built' if cuda.is_built() else 'not built'})")
    if args.peak:
        n = _native.get_num_threads()
        print(f"  FMA peak         : {_native.fma_peak_gflops(n):.1f} GFLOP/s on {n} thread(s)")


if __name__ == "__main__":
    main()
