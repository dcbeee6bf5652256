"""ONNX export (tfe-export MODEL --onnx OUT): the exported graph, run by onnxruntime, gives
the same logits and probabilities as the tfe model (skipped when onnx or onnxruntime is not
installed)."""

import json

import numpy as np
import pytest

from tfe import models, modelfile
from tfe.data.transforms import Normalizer

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


onnx = pytest.importorskip("onnx", reason="the ONNX export needs the `onnx` package")
ort = pytest.importorskip("onnxruntime", reason="running the export needs onnxruntime")


def _model(name):
    if name == "deepid":
        return models.DeepID(5)
    if name == "tfe":
        return models.TFE(models.DeepID(5), models.resnet12(8), 8)
    return models.resnet12(8) if name == "resnet12" else models.resnet18(8)


def _randomize_bn(m, rng):
    state = {}
    for k, v in m.state_dict().items():
        v = np.array(v, copy=True)
        if k.endswith("running_var"):
            v = rng.uniform(0.5, 2.0, v.shape).astype(np.float32)
        elif k.endswith("running_mean"):
            v = rng.normal(0, 0.2, v.shape).astype(np.float32)
        state[k] = v
    m.load_state_dict(state)
    return m


@pytest.mark.parametrize("name", ["resnet12", "resnet18", "deepid", "tfe"])
def test_onnx_matches_tfe(tmp_path, name):
    from tfe.export_onnx import main

    rng = np.random.default_rng(2)
    m = _randomize_bn(_model(name), rng)
    classes = [f"c{i}" for i in range(5 if name == "deepid" else 8)]
    norm = Normalizer.fit(rng.integers(0, 256, (8, 48, 48), dtype=np.uint8))
    path, out = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    modelfile.save_model(path, m, norm, classes)
    assert main([str(path), "--onnx", str(out)]) == 0

    lm = modelfile.LoadedModel(path)
    pixels = rng.integers(0, 256, (3, 48, 48)).astype(np.uint8)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits, probs = sess.run(None, {"pixels": pixels[:, None].astype(np.float32)})
    np.testing.assert_allclose(logits, lm.logits(lm.normalizer.apply(pixels)), rtol=0, atol=2e-5)
    np.testing.assert_allclose(probs, lm.probabilities(pixels), rtol=0, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["labels"]) == classes and meta["input_size"] == "48"
