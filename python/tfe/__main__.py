"""``python -m tfe``: what this installation is and what it can use."""

import argparse
import os

from . import __version__, _native, cuda


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tfe", description=__doc__)
    parser.add_argument("--peak", action="store_true",
                        help="also measure this machine's FMA peak (takes a second)")
    parser.add_argument("--cmakedir", action="store_true",
                        help="print the folder holding tfeConfig.cmake (for CMake's "
                             "find_package(tfe): -Dtfe_DIR=...) and exit")
    args = parser.parse_args()
    if args.cmakedir:
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "cmake", "tfe")
        if not os.path.isfile(os.path.join(folder, "tfeConfig.cmake")):
            raise SystemExit("python -m tfe: this tfe has no C++ library installed (no "
                             f"{folder}/tfeConfig.cmake); install it with `pip install .`")
        print(folder)
        return
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
