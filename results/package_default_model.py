"""Copies a finished run's model file into tfe's package as the default model.

    python results/package_default_model.py RUN/split/emotion.safetensors

The weights, preprocessing contract and self-test are kept as they are; the recorded
protocol keeps its settings but names its data, teacher and init files by their last
component only (a shipped file says nothing about the machine it was trained on). The
copy is loaded back (self-test included) and must give the source's logits.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from tfe import checkpoint
from tfe.modelfile import LoadedModel

TARGET = os.path.join(os.path.dirname(__file__), "..", "python", "tfe", "default_model",
                      "ferplus-resnet18.safetensors")


def _without_paths(protocol: dict) -> dict:
    return {k: (os.path.basename(v) if isinstance(v, str) and os.sep in v else v)
            for k, v in protocol.items()}


def main(source):
    tensors, meta = checkpoint.load(source)
    meta["protocol"] = _without_paths(meta.get("protocol") or {})
    checkpoint.save(TARGET, tensors, {k: v for k, v in meta.items() if k != "format"})
    before, after = LoadedModel(source), LoadedModel(TARGET)
    probe = np.random.default_rng(0).integers(0, 256, (16, *after.input_size), np.uint8)
    assert np.array_equal(before.probabilities(probe), after.probabilities(probe))
    print(f"{os.path.normpath(TARGET)}: from {source}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
