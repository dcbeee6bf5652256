"""A folder of teacher descriptors keyed by the SHA-256 of each image file's bytes.

Readable with NumPy alone (no dlib): the same image file finds its descriptor wherever it
lies and whatever it is called, and a changed file is a new key, never a stale descriptor.

Layout of a cache folder::

    meta.json                      {"format": "tfe-teacher-cache", "format_version": 1,
                                    "teacher": recipe.RECIPE}
    shard-<time>-<pid>-<rand>.safetensors
                                   keys uint8 [n, 32] (raw SHA-256), descriptors
                                   float32 [n, 128]; its metadata repeats the recipe

Shards are only ever added, each written atomically (a temporary file renamed into place),
so an interrupted run loses at most the descriptors not yet flushed, and a rerun continues
from what is there. Several writers may add shards at once (the names never collide); a
key present in two shards has the same descriptor in both. ``compact`` merges the shards
into one. A folder made with another recipe or model is refused, never mixed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import time

import numpy as np

from .. import checkpoint
from .recipe import DIM, RECIPE

FORMAT = "tfe-teacher-cache"
FORMAT_VERSION = 1
_META = "meta.json"
_SHARD_GLOB = "shard-*.safetensors"


class CacheError(ValueError):
    """A cache folder that cannot be used; the message names the folder or file."""


def file_key(path) -> str:
    """The cache key of an image file: the hex SHA-256 of its bytes."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _describe_difference(found, expected):
    if not isinstance(found, dict):
        return f"teacher {found!r}"
    keys = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
    return "; ".join(f"{k}: {found.get(k)!r} here, {expected.get(k)!r} now" for k in keys)


class DescriptorCache:
    """Open (or, with ``create``, start) the cache in ``folder``.

    ``get(key)`` / ``lookup(keys)`` / ``lookup_files(paths)`` read; ``add`` + ``flush``
    write. Everything is loaded into memory at open (about 0.5 KB per image).
    """

    def __init__(self, folder, create: bool = False):
        self.folder = os.fspath(folder)
        self._index: dict[bytes, int] = {}
        self._vectors: list[np.ndarray] = []
        self._matrix = np.zeros((0, DIM), np.float32)
        self._pending: dict[bytes, np.ndarray] = {}
        self._shards: list[str] = []
        self._open_meta(create)
        self._load_shards()

    # ---- opening -------------------------------------------------------------------------
    def _open_meta(self, create):
        meta_path = os.path.join(self.folder, _META)
        if not os.path.exists(meta_path):
            if os.path.exists(self.folder) and not os.path.isdir(self.folder):
                raise CacheError(f"{self.folder}: not a folder")
            if not create:
                raise CacheError(f"{self.folder}: no teacher cache here (no {_META})")
            if os.path.isdir(self.folder) and any(not n.startswith(".")
                                                  for n in os.listdir(self.folder)):
                raise CacheError(f"{self.folder}: folder holds other files and no {_META}; "
                                 "give an empty or new folder for the cache")
            checkpoint.atomic_write_json(meta_path, {"format": FORMAT,
                                                     "format_version": FORMAT_VERSION,
                                                     "teacher": RECIPE})
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheError(f"{meta_path}: unreadable ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CacheError(f"{meta_path}: not a teacher cache (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise CacheError(f"{meta_path}: cache format version {meta.get('format_version')!r}"
                             f", this tfe reads version {FORMAT_VERSION}")
        if meta.get("teacher") != RECIPE:
            raise CacheError(f"{self.folder}: made by another teacher recipe or model ("
                             f"{_describe_difference(meta.get('teacher'), RECIPE)}); use "
                             "another cache folder")

    def _load_shards(self):
        # A concurrent compaction may delete a shard between listing and reading it: its
        # contents are then in the merged shard, so list again.
        for attempt in range(5):
            names = sorted(glob.glob(os.path.join(self.folder, _SHARD_GLOB)))
            try:
                loaded = [self._read_shard(p) for p in names]
                break
            except FileNotFoundError:
                if attempt == 4:
                    raise CacheError(f"{self.folder}: shards keep disappearing while read")
                time.sleep(0.2)
        for keys, vectors in loaded:
            self._insert(keys, vectors)
        self._shards = names

    @staticmethod
    def _read_shard(path):
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        try:
            tensors, meta = checkpoint.load(path)
        except ValueError as e:
            raise CacheError(str(e).removeprefix("[checkpoint] ")) from None
        if meta.get("teacher") != RECIPE:
            raise CacheError(f"{path}: shard made by another teacher recipe or model ("
                             f"{_describe_difference(meta.get('teacher'), RECIPE)})")
        keys, vectors = tensors.get("keys"), tensors.get("descriptors")
        if keys is None or vectors is None or keys.dtype != np.uint8 or keys.ndim != 2 \
                or keys.shape[1] != 32 or vectors.dtype != np.float32 \
                or vectors.shape != (len(keys), DIM):
            raise CacheError(f"{path}: expected keys uint8 [n, 32] and descriptors float32 "
                             f"[n, {DIM}]")
        if not np.all(np.isfinite(vectors)):
            raise CacheError(f"{path}: non-finite descriptors")
        return keys, vectors

    def _insert(self, keys, vectors):
        fresh = []
        for i, k in enumerate(keys):
            kb = k.tobytes()
            if kb not in self._index:
                self._index[kb] = len(self._index)
                fresh.append(i)
        if fresh:
            self._vectors.append(np.asarray(vectors)[fresh])
            self._matrix = None

    # ---- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index) + sum(1 for k in self._pending if k not in self._index)

    def __contains__(self, key) -> bool:
        kb = _key_bytes(key)
        return kb in self._index or kb in self._pending

    def _rows(self):
        if self._matrix is None:
            self._matrix = np.concatenate(self._vectors) if self._vectors else \
                np.zeros((0, DIM), np.float32)
            self._vectors = [self._matrix]
        return self._matrix

    def get(self, key):
        """The float32 [128] descriptor of a key (hex SHA-256), or None."""
        kb = _key_bytes(key)
        if kb in self._pending:
            return self._pending[kb].copy()
        row = self._index.get(kb)
        return None if row is None else self._rows()[row].copy()

    def lookup(self, keys):
        """(descriptors float32 [N, 128], found bool [N]); rows not found are zeros."""
        out = np.zeros((len(keys), DIM), np.float32)
        found = np.zeros(len(keys), bool)
        for i, key in enumerate(keys):
            v = self.get(key)
            if v is not None:
                out[i], found[i] = v, True
        return out, found

    def lookup_files(self, paths):
        """``lookup`` of image files by their content."""
        return self.lookup([file_key(p) for p in paths])

    # ---- writing -------------------------------------------------------------------------
    def add(self, key, descriptor) -> None:
        """Remember one descriptor; it reaches the disk at the next ``flush``."""
        v = np.asarray(descriptor, np.float32).reshape(-1)
        if v.shape != (DIM,) or not np.all(np.isfinite(v)):
            raise ValueError(f"descriptor: expected {DIM} finite values, got shape {v.shape}")
        kb = _key_bytes(key)
        if kb not in self._index:
            self._pending[kb] = v

    @property
    def unflushed(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Write the added descriptors as one new shard (atomically)."""
        if not self._pending:
            return
        keys = np.frombuffer(b"".join(self._pending), np.uint8).reshape(-1, 32)
        vectors = np.stack(list(self._pending.values()))
        path = os.path.join(self.folder, f"shard-{time.strftime('%Y%m%d%H%M%S')}-"
                                         f"{os.getpid()}-{secrets.token_hex(4)}.safetensors")
        _write_shard(path, keys, vectors)
        self._pending = {}
        self._insert(keys, vectors)
        self._shards.append(path)

    def compact(self) -> None:
        """Merge the shards this cache has read or written into one (then delete them)."""
        self.flush()
        if len(self._shards) <= 1:
            return
        keys = np.zeros((len(self._index), 32), np.uint8)
        for kb, row in self._index.items():
            keys[row] = np.frombuffer(kb, np.uint8)
        path = os.path.join(self.folder, f"shard-{time.strftime('%Y%m%d%H%M%S')}-"
                                         f"{os.getpid()}-{secrets.token_hex(4)}.safetensors")
        _write_shard(path, keys, self._rows())
        old, self._shards = self._shards, [path]
        for p in old:  # each deleted shard's descriptors are in the merged one already
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def _write_shard(path, keys, vectors):
    checkpoint.save(path, {"keys": keys, "descriptors": vectors},
                    {"kind": "teacher-descriptors", "teacher": RECIPE})


def _key_bytes(key) -> bytes:
    if isinstance(key, bytes) and len(key) == 32:
        return key
    try:
        kb = bytes.fromhex(key)
    except (TypeError, ValueError):
        kb = b""
    if len(kb) != 32:
        raise ValueError(f"cache key: expected a hex SHA-256 (64 hex digits), got {key!r}")
    return kb
