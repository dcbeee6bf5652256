"""Model files: ``.safetensors`` (readable by the ``safetensors`` package too) written
atomically, with tfe's metadata.

Layout (the safetensors format): 8-byte little-endian header length, a JSON header
mapping tensor names to dtype/shape/byte offsets plus ``__metadata__`` (string values;
tfe stores JSON strings there), then the raw little-endian tensor bytes.

Metadata keys written by tfe: ``format`` ("tfe-1", or "tfe-2": see
tfe.modelfile.format_of), ``architecture``, ``layers`` (tfe.layers), ``preprocessing``
(input size, grayscale, normalisation, label order), ``protocol`` (how it was trained),
``selftest`` (names of the stored reference input and its expected logits), and any extra
training state for resuming. The reader (tfe.model_reader) treats files as untrusted: every
length and offset is checked and a malformed file raises ``ValueError`` naming the file.
"""

import itertools
import json
import os
import re
import secrets
import signal
import struct

import numpy as np

from . import model_reader

FORMAT = model_reader.FORMAT
_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
           "U8": np.uint8}
_CODES = {np.dtype(v).str: k for k, v in _DTYPES.items()}

# Temporary files: ".tmp-<pid>-<process token>-<n>-<final name>". The pid and a token drawn
# once per process tell a temporary left by a killed run (its process is gone) from one being
# written right now, by this process or another run sharing the folder.
_TOKEN = secrets.token_hex(4)
_SERIAL = itertools.count()
_TEMPORARY = re.compile(r"\.tmp-(\d+)-([0-9a-f]{8})-\d+-.+")


def atomic_write_bytes(path, chunks):
    """Writes to a temporary file beside ``path`` and renames it into place, so a reader
    never sees a half-written file and a crash never destroys the previous one. The file
    gets the permissions of the process umask (like ``open``)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{_TOKEN}-{next(_SERIAL)}-"
                               f"{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        _test_kill_point(path)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj):
    atomic_write_bytes(path, [json.dumps(obj, indent=2, sort_keys=False).encode() + b"\n"])


def remove_stale_temporaries(folder):
    """Deletes the temporaries that killed tfe runs left in ``folder`` (not in sub-folders):
    only names of ``atomic_write_bytes``'s exact form whose process is gone; anything else,
    a user's file above all, is left alone. Returns the number removed."""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        m = _TEMPORARY.fullmatch(name)
        if m is None or _in_flight(int(m.group(1)), m.group(2)):
            continue
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:  # another run cleaned it first
                pass
    return removed


def _in_flight(pid, token):
    if pid == os.getpid():
        return token == _TOKEN  # same pid, other token: an earlier process, now gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # alive under another user; absurd pids are not processes
    return True


_KILL_COUNTS = {}


def _test_kill_point(path):
    """Test support only (tests/test_resume_exact.py): with TFE_TEST_KILL_BEFORE_RENAME set
    to "NAME:N", the process SIGKILLs itself on its N-th write of a file called NAME, after
    the temporary is written and before it is renamed: a kill in the middle of a write."""
    spec = os.environ.get("TFE_TEST_KILL_BEFORE_RENAME")
    if not spec:
        return
    name, _, count = spec.rpartition(":")
    if os.path.basename(path) == name:
        _KILL_COUNTS[name] = _KILL_COUNTS.get(name, 0) + 1
        if str(_KILL_COUNTS[name]) == count:
            os.kill(os.getpid(), signal.SIGKILL)


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
