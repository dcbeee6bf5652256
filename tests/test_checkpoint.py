"""Model files: safetensors round trip (and readable by the safetensors package), atomic
writes, and clean errors for malformed files."""

import json
import os
import struct

import numpy as np
import pytest

from tfe import checkpoint


def _write(path, tensors, meta=None):
    checkpoint.save(path, tensors, meta or {"architecture": {"name": "x"}})


def test_round_trip_keeps_values_dtypes_and_metadata(tmp_path):
    t = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "i": np.arange(3, dtype=np.int64),
         "m": np.array([1, 0, 1], np.uint8), "empty": np.zeros((0, 2), np.float32)}
    path = tmp_path / "m.safetensors"
    _write(path, t, {"architecture": {"name": "resnet12", "blocks": [2, 2, 1]}, "note": "hi"})
    back, meta = checkpoint.load(path)
    assert meta["architecture"] == {"name": "resnet12", "blocks": [2, 2, 1]}
    assert meta["note"] == "hi" and meta["format"] == checkpoint.FORMAT
    for k, v in t.items():
        assert back[k].dtype == v.dtype
        np.testing.assert_array_equal(back[k], v)


def test_readable_by_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is a test-only extra")
    path = tmp_path / "m.safetensors"
    w = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    _write(path, {"w": w})
    np.testing.assert_array_equal(st.load_file(str(path))["w"], w)


def test_write_is_atomic_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "m.safetensors"
    _write(path, {"w": np.ones(3, np.float32)})
    with pytest.raises(TypeError):
        checkpoint.save(path, {"w": np.ones(3, np.float32)}, {"bad": object()})
    back, _ = checkpoint.load(path)  # the previous file is intact
    np.testing.assert_array_equal(back["w"], np.ones(3))
    assert os.listdir(tmp_path) == ["m.safetensors"]


def _header(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _rewrite(path, header, body):
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + body)


@pytest.mark.parametrize("damage, message", [
    ("truncated", "header length"),
    ("empty", "truncated"),
    ("huge_header", "header length"),
    ("not_json", "invalid JSON"),
    ("bad_offsets", "outside the data section"),
    ("wrong_size", "do not hold F32 shape"),
    ("bad_dtype", "unsupported dtype"),
    ("foreign", "not a tfe model file"),
])
def test_malformed_files_raise_clear_errors(tmp_path, damage, message):
    path = tmp_path / "m.safetensors"
    _write(path, {"w": np.ones((4, 4), np.float32)})
    header, body = _header(path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:20])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "huge_header":
        path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    elif damage == "not_json":
        path.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{x")
    elif damage == "bad_offsets":
        header["w"]["data_offsets"] = [0, 10**9]
        _rewrite(path, header, body)
    elif damage == "wrong_size":
        header["w"]["shape"] = [5, 4]
        _rewrite(path, header, body)
    elif damage == "bad_dtype":
        header["w"]["dtype"] = "Q99"
        _rewrite(path, header, body)
    elif damage == "foreign":
        header["__metadata__"] = {}
        _rewrite(path, header, body)
    with pytest.raises(ValueError, match=rf"^.*m\.safetensors: .*{message}"):
        checkpoint.load(path)


def test_missing_file_is_a_clean_error(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.safetensors: cannot open"):
        checkpoint.load(tmp_path / "nope.safetensors")
