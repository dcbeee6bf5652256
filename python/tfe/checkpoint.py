"""Model files: ``.safetensors`` (readable by the ``safetensors`` package too) written
atomically, with tfe's metadata.

Layout (the safetensors format): 8-byte little-endian header length, a JSON header
mapping tensor names to dtype/shape/byte offsets plus ``__metadata__`` (string values;
tfe stores JSON strings there), then the raw little-endian tensor bytes.

Metadata keys written by tfe: ``format`` ("tfe-1"), ``architecture``, ``preprocessing``
(input size, grayscale, normalisation, label order), ``protocol`` (how it was trained),
``selftest`` (names of the stored reference input and its expected logits), and any extra
training state for resuming. The reader (tfe.model_reader) treats files as untrusted: every
length and offset is checked and a malformed file raises ``ValueError`` naming the file.
"""

import json
import os
import struct
import tempfile

import numpy as np

from . import model_reader

FORMAT = model_reader.FORMAT
_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
           "U8": np.uint8}
_CODES = {np.dtype(v).str: k for k, v in _DTYPES.items()}


def atomic_write_bytes(path, chunks):
    """Writes to a temporary file beside ``path`` and renames it into place, so a reader
    never sees a half-written file and a crash never destroys the previous one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj):
    atomic_write_bytes(path, [json.dumps(obj, indent=2, sort_keys=False).encode() + b"\n"])


def save(path, tensors, metadata=None):
    """Writes ``{name: array}`` and ``{key: str | JSON-able}`` metadata to ``path``."""
    header, chunks, offset = {}, [], 0
    meta = {"format": FORMAT}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    header["__metadata__"] = meta
    for name, value in tensors.items():
        a = np.ascontiguousarray(np.asarray(value))
        if a.dtype.str not in _CODES:
            a = a.astype(np.float32)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": _CODES[a.dtype.str], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        chunks.append(a.tobytes())
        offset += a.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data section starts 8-byte aligned
    atomic_write_bytes(path, [struct.pack("<Q", len(blob)), blob, *chunks])


def load(path):
    """Returns ``(tensors, metadata)``; metadata values that hold JSON are decoded. The file is
    checked as untrusted input (tfe.model_reader); a malformed one raises
    ``model_reader.ModelFileError`` (a ValueError), one line naming the file."""
    c = model_reader.read_container(path)
    return {k: c.array(k) for k in c.tensors}, c.decoded_metadata()
