"""Deployable model files: weights + architecture + preprocessing contract + self-test.

The preprocessing contract says how to turn a face image into the network input: input
size, grayscale, per-pixel mean/std (stored as tensors ``preprocess.mean`` and
``preprocess.std``) and the label order. The self-test is a stored reference input
(``selftest.input``) and the logits the model gave for it (``selftest.logits``), so any
reader (the Python API, the C++ library) can prove it runs the model correctly: both run it
at load and refuse the file beyond 2^-10 of max(1, max |logit|), a float32 rounding bound.
"""

import os

import numpy as np

from . import __version__, checkpoint, layers, model_reader
from .data.transforms import Normalizer
from .function import no_grad
from .tensor import Tensor, host

SELFTEST_SEED = 20240607


def format_of(layer_list, arch, size):
    """The format tag of a file holding ``layer_list`` for architecture ``arch``.

    The layer list is a new metadata key. Readers of "tfe-1" (tfe before the layer list)
    ignore keys they do not know and rebuild the network from the architecture JSON, which
    always gives BN eps 1e-5. So a file stays "tfe-1" when its list is exactly what its
    architecture describes (every file tfe-train writes: older readers run it correctly),
    and is "tfe-2" when it is not (e.g. another eps): an older reader then refuses it ("format
    tfe-2 is not supported") instead of running a different network."""
    try:
        derived = model_reader.layers_from_architecture(arch, size)
    except model_reader.ModelFileError:
        derived = None
    return "tfe-1" if derived == layer_list else "tfe-2"


def save_model(path, model, normalizer, classes, protocol=None):
    """Writes ``model`` with its preprocessing contract and a fresh self-test, atomically."""
    mean, std = normalizer.mean, normalizer.std
    size = int(mean.shape[-1])
    rng = np.random.default_rng(SELFTEST_SEED)
    probe = rng.standard_normal((1, 1, size, size)).astype(np.float32)
    was_training = model.training
    model.eval()
    with no_grad():
        x = Tensor(probe)
        if model.device.is_cuda:
            x = x.to(model.device)
        logits = np.array(host(model(x).data), copy=True)
    model.train(was_training)
    tensors = dict(model.state_dict())
    tensors.update({"preprocess.mean": mean.astype(np.float32),
                    "preprocess.std": std.astype(np.float32),
                    "selftest.input": probe, "selftest.logits": logits})
    layer_list = layers.describe(model)
    meta = {
        "format": format_of(layer_list, model.arch, size),
        "architecture": model.arch,
        "layers": layer_list,
        "preprocessing": {"input_size": [size, size], "grayscale": True,
                          "normalization": "per-pixel: (x - preprocess.mean) / preprocess.std, "
                                           "x in [0, 255]",
                          "labels": list(classes)},
        "selftest": {"input": "selftest.input", "logits": "selftest.logits"},
        "protocol": protocol or {},
        "tfe_version": __version__,
    }
    checkpoint.save(path, tensors, meta)


class LoadedModel:
    """A model file, ready to predict: ``probabilities(images uint8 [N, H, W])``.

    The file is untrusted input: it is checked completely (tfe.model_reader, the same checks
    and messages as the C++ library) before the model is built, and its stored self-test
    runs at load, so a file whose weights do not compute its stored logits never predicts.
    Any problem raises ``model_reader.ModelFileError`` (a ValueError): one line,
    ``"<file>: <problem>"``."""

    def __init__(self, path, data=None):
        """``data``: the file's bytes when already in memory (``path`` then only names it)."""
        c = (model_reader.read_container(path) if data is None
             else model_reader.parse_container(data, os.fsdecode(path)))
        valid = model_reader.validate_model(c)
        self.path, self.name, self.metadata = path, c.name, c.decoded_metadata()
        self.classes, self.input_size = valid.labels, (valid.input_size, valid.input_size)
        tensors = dict(valid.tensors)
        self.normalizer = Normalizer.from_arrays(tensors.pop("preprocess.mean"),
                                                 tensors.pop("preprocess.std"))
        self.selftest_input = tensors.pop("selftest.input")
        self.selftest_logits = tensors.pop("selftest.logits")
        self.model = layers.build(valid.layers, valid.architecture)
        self.model.load_state_dict(tensors)
        self.model.eval()
        diff = self.selftest()
        if not diff <= valid.selftest_tolerance:
            raise model_reader.ModelFileError(
                f"{c.name}: {model_reader.selftest_failure(diff, valid.selftest_tolerance)}",
                "TFE_ERR_SELFTEST")

    def logits(self, x):
        with no_grad():
            return np.array(self.model(Tensor(np.ascontiguousarray(x, np.float32))).data, copy=True)

    def probabilities(self, images):
        """Class probabilities [N, K] for uint8 images already at the input size. Logits that
        overflow (hostile finite weights can, for inputs other than the self-test's) raise
        ModelFileError rather than give NaN."""
        with np.errstate(all="ignore"):
            z = self.logits(self.normalizer.apply(images))
        finite = np.isfinite(z).all(axis=1)
        if not finite.all():
            raise model_reader.ModelFileError(
                f"{self.name}: {model_reader.nonfinite_logit(int(np.argmin(finite)))}")
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def selftest(self):
        """Max |logit difference| on the stored reference input (NaN if any is NaN)."""
        with np.errstate(all="ignore"):  # a diverging forward fails here, silently
            d = np.abs(self.logits(self.selftest_input) - self.selftest_logits)
        return np.float32(np.nan) if np.isnan(d).any() else np.float32(d.max())


def load_model(path):
    """A LoadedModel for ``path``; raises model_reader.ModelFileError for a refused file."""
    return LoadedModel(path)
