"""CK+ loader (tfe.data.ckplus): the official layout (cohn-kanade-images/ + Emotion/) and the
folder-per-emotion copies.

Fixtures are generated in tmp_path in the real layouts (640x490 frames, *_emotion.txt
files with CK+'s float codes). The real copies under $TFE_DATA_DIR or ../shared/data are
used only by the last tests, which skip without them.
"""

import os

import numpy as np
import pytest
from PIL import Image

from helpers import quiet, real_data
from tfe.data.ckplus import (central_crop, detect_layout, frames_description, load_ckplus,
                             read_emotion_file)
from tfe.data.folders import EXPRESSIONS, BadImage




def frame(value, rgb=False):
    """A 640x490 frame: a smooth gradient plus a constant, cheap to write as PNG."""
    x = np.linspace(0, 60, 640)[None, :] + np.linspace(0, 40, 490)[:, None]
    g = np.clip(x + value, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2) if rgb else g


# (subject, sequence, frames, code); code None = unlabelled sequence.
SEQUENCES = [("S005", "001", 6, 3), ("S005", "002", 5, None), ("S010", "004", 7, 7),
             ("S011", "001", 4, 1), ("S011", "002", 9, 5)]


def make_official(root, sequences=SEQUENCES, face=None, rgb_subject=None):
    """Official CK+ layout; frame n of a sequence has the constant 10 * n (so tests can tell
    frames apart); ``face`` (uint8 image) is pasted into every frame when given."""
    for subject, seq, n, code in sequences:
        d = root / "cohn-kanade-images" / subject / seq
        d.mkdir(parents=True)
        for i in range(1, n + 1):
            im = frame(10 * i, rgb=subject == rgb_subject)
            if face is not None:
                s = face.shape[0]
                im[140 : 140 + s, 220 : 220 + s] = face if im.ndim == 2 else face[..., None]
            Image.fromarray(im).save(d / f"{subject}_{seq}_{i:08d}.png")
        if code is not None:
            e = root / "Emotion" / subject / seq
            e.mkdir(parents=True)
            (e / f"{subject}_{seq}_{n:08d}_emotion.txt").write_text(f"   {code:.7e}\n")
    return root


def emotion_path(root, subject, seq, n):
    return root / "Emotion" / subject / seq / f"{subject}_{seq}_{n:08d}_emotion.txt"


def test_official_layout_frames_labels_subjects(tmp_path):
    root = make_official(tmp_path)
    logs = []
    data = load_ckplus(root, size=32, use_opencv=False, log=logs.append)
    labelled = [s for s in SEQUENCES if s[3] is not None]
    assert len(data) == 4 * len(labelled)  # first frame + last three per labelled sequence
    assert data.classes == list(EXPRESSIONS) and data.images.shape[1:] == (32, 32)
    assert data.labels.tolist() == [0, 3, 3, 3, 0, 7, 7, 7, 0, 1, 1, 1, 0, 5, 5, 5]
    assert data.subjects.tolist() == ["S005"] * 4 + ["S010"] * 4 + ["S011"] * 8
    # Frames picked: 1 and the last three (frame n carries the constant 10 n).
    expected = [central_crop(frame(10 * i), 32) for i in (1, 4, 5, 6)]
    assert np.array_equal(data.images[:4], np.stack(expected))
    assert any("4 labelled sequences, 16 frames" in m and "central 16" in m for m in logs)


def test_official_layout_rgb_frames_and_short_sequence(tmp_path):
    seqs = [("S020", "001", 2, 4), ("S021", "003", 5, 2)]
    root = make_official(tmp_path, seqs, rgb_subject="S020")
    logs = []
    data = load_ckplus(root, use_opencv=False, log=logs.append)
    # The 2-frame sequence gives its first frame (neutral) and its last one, nothing twice.
    assert data.labels.tolist() == [0, 4, 0, 2, 2, 2]
    assert any("1 labelled sequence(s) have fewer than 4 frames" in m for m in logs)
    assert np.array_equal(data.images[0], central_crop(frame(10), 48))


def test_official_frames_description(tmp_path):
    root = make_official(tmp_path)
    text = frames_description(root, use_opencv=False)
    assert "4 labelled sequences" in text and "last 3 frames" in text
    assert "fixed central crop (disabled)" in text


def test_detect_layout(tmp_path):
    (tmp_path / "anger").mkdir()
    assert detect_layout(tmp_path) == "folders"
    (tmp_path / "cohn-kanade-images").mkdir()
    with pytest.raises(FileNotFoundError, match="Emotion"):
        detect_layout(tmp_path)
    (tmp_path / "Emotion").mkdir()
    assert detect_layout(tmp_path) == "official"
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_ckplus(tmp_path / "missing")


@pytest.mark.parametrize("text, message", [
    ("abc\n", "malformed emotion code 'abc'"),
    ("", "expected one number, got 0"),
    ("1.0 2.0", "expected one number, got 2"),
    ("9.0000000e+00", "unknown emotion code"),
    ("2.5", "unknown emotion code"),
    ("-1", "unknown emotion code"),
    ("nan", "unknown emotion code"),
])
def test_bad_emotion_file(tmp_path, text, message):
    root = make_official(tmp_path, SEQUENCES[:1])
    path = emotion_path(root, "S005", "001", 6)
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        load_ckplus(root, use_opencv=False, log=quiet)
    assert str(path) in str(e.value)


def test_read_emotion_file_codes(tmp_path):
    for code in range(8):
        p = tmp_path / f"{code}.txt"
        p.write_text(f"   {code:.7e}\n")
        assert read_emotion_file(p) == code
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="bin.txt"):
        read_emotion_file(tmp_path / "bin.txt")


def test_labelled_sequence_without_frames(tmp_path):
    root = make_official(tmp_path, SEQUENCES[:2])
    extra = emotion_path(root, "S099", "001", 3)
    extra.parent.mkdir(parents=True)
    extra.write_text("1.0\n")
    with pytest.raises(FileNotFoundError, match="S099_001_00000003_emotion.txt: labelled "
                                                "sequence has no frames"):
        load_ckplus(root, use_opencv=False, log=quiet)
    (root / "cohn-kanade-images" / "S099" / "001").mkdir(parents=True)
    with pytest.raises(ValueError, match="labelled sequence has no frames"):
        load_ckplus(root, use_opencv=False, log=quiet)


def test_labelled_frame_missing(tmp_path):
    root = make_official(tmp_path, SEQUENCES[:1])
    os.rename(emotion_path(root, "S005", "001", 6), emotion_path(root, "S005", "001", 8))
    with pytest.raises(ValueError, match="labels frame 8, which is not among the 6 frames"):
        load_ckplus(root, use_opencv=False, log=quiet)


def test_no_emotion_files(tmp_path):
    root = make_official(tmp_path, [("S005", "002", 5, None)])
    (root / "Emotion").mkdir()
    with pytest.raises(ValueError, match="no \\*_emotion.txt label files"):
        load_ckplus(root, use_opencv=False, log=quiet)


def test_bad_frame_named_and_skipped(tmp_path):
    root = make_official(tmp_path)
    bad = root / "cohn-kanade-images" / "S010" / "004" / "S010_004_00000006.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(BadImage, match="S010_004_00000006.png"):
        load_ckplus(root, use_opencv=False, log=quiet)
    logs = []
    got = load_ckplus(root, use_opencv=False, skip_bad=True, log=logs.append)
    assert len(got) == 15
    assert any("skipped 1 unreadable image(s)" in m for m in logs)


def test_official_with_opencv_face_crop(tmp_path):
    pytest.importorskip("cv2", reason="face detection needs opencv-python-headless")
    from tfe.data import faces
    from tfe.data.synthetic import SyntheticFaces

    if not faces.opencv_available():
        pytest.skip(faces.opencv_unavailable_reason())
    # A generated face the Haar cascade finds in a frame (this test is about the loader's
    # use of the detector, not about the detector).
    face = None
    for candidate in SyntheticFaces(seed=0, size=200).identity_set(6, 1).images:
        im = frame(10)
        im[140:340, 220:420] = candidate
        if faces.detect_faces(im):
            face = candidate
            break
    if face is None:
        pytest.skip("the Haar cascade finds none of the generated faces")
    seqs = [("S005", "001", 5, 6), ("S006", "001", 4, 2)]
    root = make_official(tmp_path, seqs, face=face)
    # One frame without a face: it must reuse the box of its neighbours.
    blank = root / "cohn-kanade-images" / "S005" / "001" / "S005_001_00000004.png"
    Image.fromarray(frame(40)).save(blank)
    logs = []
    data = load_ckplus(root, size=48, log=logs.append)
    assert len(data) == 8
    summary = [m for m in logs if "face crop" in m][0]
    assert "neighbour box 1" in summary and "central" not in summary
    assert "OpenCV" in frames_description(root)
    # The face crop differs from the fixed central crop.
    assert not np.array_equal(data.images[0], central_crop(np.asarray(Image.open(
        root / "cohn-kanade-images" / "S005" / "001" / "S005_001_00000001.png")), 48))


# --- folder layouts -----------------------------------------------------------------------


def test_folder_layout_through_load_ckplus(tmp_path, rng):
    for ci, c in enumerate(("surprise", "anger", "neutral")):
        (tmp_path / c).mkdir()
        for p in range(3):
            for f in (1,) if c == "neutral" else (7, 8, 9):
                Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(
                    tmp_path / c / f"S{p:03d}_{ci:03d}_{f:08d}.png")
    data = load_ckplus(tmp_path, log=quiet)
    assert data.classes == ["neutral", "anger", "surprise"]
    assert data.class_counts().tolist() == [3, 9, 9] and len(data.people()) == 3
    text = frames_description(tmp_path)
    assert "with a neutral class" in text and "1 frame(s): 3" in text and "3 frame(s): 6" in text


# --- real copies (skip without them) ------------------------------------------------------


def test_real_ckplus48():
    root = real_data("ckplus48")
    data = load_ckplus(root, log=quiet)
    assert len(data) == 981 and data.num_classes == 7 and len(data.people()) == 118
    assert data.class_counts().tolist() == [135, 54, 177, 75, 207, 84, 249]
    assert "3 frame(s): 327" in frames_description(root)


def test_real_ckplus_neutral48():
    data = load_ckplus(real_data("ckplus_neutral48"), log=quiet)
    assert len(data) == 890 and data.num_classes == 8 and len(data.people()) == 123
    assert data.classes[0] == "neutral" and data.class_counts()[0] == 575
