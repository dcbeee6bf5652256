"""Shared test fixtures: seeded random inputs, the CUDA skip rule, and the report header
that names the CPU kernel level the run uses."""

import numpy as np
import pytest

import tfe


def pytest_report_header(config):
    return f"tfe gemm kernel: {tfe._native.gemm_kernel()} (TFE_GEMM_KERNEL forces a lower one)"


def pytest_collection_modifyitems(config, items):
    if tfe.cuda.is_available():
        return
    reason = f"needs a CUDA GPU: {tfe.cuda.unavailable_reason()}"
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: inputs are reproducible run to run."""
    return np.random.default_rng(1234)
