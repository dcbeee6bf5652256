"""The numerics tests once more on every GEMM kernel level below this machine's own.

The CPU kernels pick their micro-kernel once per process (AVX-512, AVX2 or portable, the
best the CPU has; TFE_GEMM_KERNEL forces a lower one). An AVX-512 machine running the suite
would otherwise never execute the paths that AMD and older Intel machines take, and a
tolerance or a bug that shows on those paths only would reach users first. So every test
marked ``numerics`` runs again in a child pytest per lower level, and its failures are this
test's failures. The child's report header names the kernel it really ran (conftest.py).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfe import _native as native

LEVELS = ("generic", "avx2", "avx512")
ACTIVE = native.gemm_kernel()
LOWER = LEVELS[:LEVELS.index(ACTIVE)]
TESTS = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.parametrize("level", LOWER)
def test_numerics_on_a_lower_kernel_level(level):
    env = {**os.environ, "TFE_GEMM_KERNEL": level}
    r = subprocess.run([sys.executable, "-m", "pytest", "-m", "numerics", "-p",
                        "no:cacheprovider", "--rootdir", str(TESTS.parent), str(TESTS)],
                       env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=1800)
    out = r.stdout + r.stderr
    assert f"tfe gemm kernel: {level}" in out, f"the child did not run {level}:\n{out[-3000:]}"
    assert r.returncode == 0, f"numerics tests with TFE_GEMM_KERNEL={level}:\n{out[-6000:]}"
