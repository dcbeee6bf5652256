"""Small model files written by tfe, and the header/body surgery the model-file tests use."""

import json
import struct

import numpy as np

from tfe import models, modelfile
from tfe.data.transforms import Normalizer

STATUS = {"TFE_OK": 0, "TFE_ERR_IO": 1, "TFE_ERR_FORMAT": 2, "TFE_ERR_VERSION": 3,
          "TFE_ERR_ARGUMENT": 4, "TFE_ERR_UNSUPPORTED": 5, "TFE_ERR_MEMORY": 6,
          "TFE_ERR_SELFTEST": 7, "TFE_ERR_INTERNAL": 8}


def _calibrate(model, rng):
    """Non-trivial BN statistics and biases, so every tensor's bytes matter."""
    state = {}
    for k, v in model.state_dict().items():
        v = np.array(v, copy=True)
        if k.endswith("running_var"):
            v = rng.uniform(0.5, 2.0, v.shape).astype(np.float32)
        elif k.endswith("running_mean") or (k.endswith("bias") and v.ndim == 1):
            v = rng.normal(0, 0.2, v.shape).astype(np.float32)
        state[k] = v
    model.load_state_dict(state)
    return model


def write_seeds(folder, size=48):
    """Model files of every architecture the readers run, for size x size input (tiny models
    when size is small): {name: path}."""
    rng = np.random.default_rng(5)
    norm = Normalizer.fit(rng.integers(0, 256, (4, size, size), dtype=np.uint8))
    built = {"resnet12": models.resnet12(8),
             "resnet18-2": models.ResNet((1, 1, 0), 3, name="resnet18"),
             "deepid": models.DeepID(5, input_size=size),
             "tfe": models.TFE(models.DeepID(4, input_size=size), models.ResNet((1, 0, 1), 6), 7)}
    paths = {}
    for name, m in built.items():
        _calibrate(m, rng)
        k = m.arch.get("num_classes", m.arch.get("num_identities"))
        paths[name] = folder / f"{name}.safetensors"
        modelfile.save_model(paths[name], m, norm, [f"class{j}" for j in range(k)])
    return paths


def write_tiny_seeds(folder):
    """Tiny model files (small inputs, few blocks) of every architecture, for fuzzing: an
    accepted input runs its self-test, so each must load in well under a millisecond."""
    rng = np.random.default_rng(6)
    built = {"resnet-123": (models.ResNet((1, 1, 1), 4), 12),
             "resnet-12": (models.ResNet((1, 1), 2), 9),
             "resnet12-1": (models.ResNet((1,), 3, name="resnet12"), 8),
             "deepid": (models.DeepID(3, input_size=32), 32),
             "tfe": (models.TFE(models.DeepID(2, input_size=32), models.ResNet((0, 1), 5), 2), 32)}
    paths = {}
    for name, (m, size) in built.items():
        _calibrate(m, rng)
        norm = Normalizer.fit(rng.integers(0, 256, (4, size, size), dtype=np.uint8))
        k = m.arch.get("num_classes", m.arch.get("num_identities"))
        paths[name] = folder / f"tiny-{name}.safetensors"
        modelfile.save_model(paths[name], m, norm, [f"c{j}" for j in range(k)])
    return paths


def split(data):
    """(header dict, data section) of a model file's bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, body, raw=None):
    """File bytes from a header (or raw header bytes) and a data section."""
    blob = raw if raw is not None else json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + body


def tensors_of(data):
    """{name: array} and the metadata strings of a well-formed file's bytes."""
    header, body = split(data)
    meta = header.pop("__metadata__")
    codes = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1"}
    out = {}
    for k, e in header.items():
        b, en = e["data_offsets"]
        out[k] = np.frombuffer(body[b:en], codes[e["dtype"]]).reshape(e["shape"]).copy()
    return out, meta


def build(tensors, meta):
    """File bytes holding ``tensors`` (any of the five dtypes, kept) and metadata strings,
    laid out contiguously as tfe writes them."""
    codes = {"<f4": "F32", "<f8": "F64", "<i8": "I64", "<i4": "I32", "|u1": "U8"}
    header, chunks, offset = {"__metadata__": meta}, [], 0
    for k, v in tensors.items():
        v = np.ascontiguousarray(v)
        v = v.astype(v.dtype.newbyteorder("<"), copy=False)
        header[k] = {"dtype": codes[v.dtype.str], "shape": list(v.shape),
                     "data_offsets": [offset, offset + v.nbytes]}
        chunks.append(v.tobytes())
        offset += v.nbytes
    return join(header, b"".join(chunks))
