"""The seeded generator that initialises weights (``tfe.manual_seed``), so the same seed
gives the same model on every run."""

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _generator
