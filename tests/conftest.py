"""Shared test fixtures: seeded random inputs and the CUDA skip rule."""

import numpy as np
import pytest

import tfe


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
