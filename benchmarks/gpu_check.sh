#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU (PyTorch, CuPy, CMake, nvcc, pybind11 and
# scikit-build-core installed; nothing is downloaded), from the repository root:
#
#     bash benchmarks/gpu_check.sh
#
# 1. builds tfe with the CUDA backend for this card (pip, no build isolation, into a
#    private folder: the system's packages are left alone);
# 2. runs the `cuda` tests (every CUDA kernel against the NumPy and CuPy reference and the
#    CPU kernels; whole-model steps, CUDA graphs, the device-memory cache, tfe-train);
# 3. runs the GPU benchmarks (every conv layer against cuDNN; the full ResNet18 and TFE18
#    training step at batch 128 against PyTorch + cuDNN);
# and writes everything to benchmarks/results/<date>-gpu-<card>.txt (+ .json), printing a
# short table last. Budget: under 8 minutes on an H100/H200.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
budget=470  # seconds for the whole check (the limit is 8 minutes)
left() { echo $((budget - (SECONDS - start))); }
PY=${PYTHON:-python3}
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if [ -z "$card" ]; then echo "gpu_check: no NVIDIA GPU found (nvidia-smi)"; exit 1; fi
slug=$(echo "$card" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-' | sed 's/-$//')
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
mkdir -p benchmarks/results
out=benchmarks/results/$(date +%F)-gpu-$slug.txt
log() { echo "$@" | tee -a "$out"; }
: > "$out"
log "tfe GPU check, $(date -u +'%F %T') UTC, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
log "card: $card (sm_$cc); $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1) driver"
log "nvcc: $(nvcc --version | tail -2 | head -1)"
log "python: $($PY -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cudnn", torch.backends.cudnn.version())')"

# 1. build (all cores; this card's architecture only, to keep the build short)
site=$(mktemp -d /tmp/tfe-gpu-site.XXXX)
log "== build (pip install --no-build-isolation into $site)"
t0=$SECONDS
if ! CMAKE_ARGS="-DTFE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$cc" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    $PY -m pip install -q --no-build-isolation --no-deps --target "$site" . >>"$out" 2>&1; then
  log "gpu_check: the build failed (see $out)"; exit 1
fi
log "built in $((SECONDS - t0)) s"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
$PY -c 'import tfe; assert tfe.cuda.is_available(), tfe.cuda.unavailable_reason(); print("tfe", tfe.__version__, "sees", tfe.cuda.device_count(), "GPU(s)")' 2>&1 | tee -a "$out" || exit 1

# 2. the cuda tests (the installed package comes first on PYTHONPATH)
log "== cuda tests"
t0=$SECONDS
# the tests may use what is left but 150 s, kept for the benchmarks
test_s=$(( $(left) - 150 )); [ "$test_s" -gt 300 ] && test_s=300; [ "$test_s" -lt 60 ] && test_s=60
timeout "$test_s" $PY -m pytest -q -m cuda -p no:cacheprovider tests/ 2>&1 | tee -a "$out" | tail -25
tests_rc=${PIPESTATUS[0]}
log "cuda tests: exit $tests_rc in $((SECONDS - t0)) s"

# 3. benchmarks
log "== benchmarks"
t0=$SECONDS
bench_s=$(left); quick=""
[ "$bench_s" -lt 150 ] && quick="--quick"  # the quick settings finish in about a minute
[ "$bench_s" -lt 60 ] && bench_s=60
timeout "$bench_s" $PY benchmarks/gpu_bench.py $quick --out "${out%.txt}.json" 2>&1 \
  | tee -a "$out" > /tmp/tfe-gpu-bench.txt
bench_rc=${PIPESTATUS[0]}
log "benchmarks: exit $bench_rc in $((SECONDS - t0)) s"

log "== summary ($((SECONDS - start)) s in all; full log: $out)"
log "cuda tests exit $tests_rc, benchmarks exit $bench_rc"
tail -n 15 /tmp/tfe-gpu-bench.txt
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
