"""Faces in photos (recognizer.py) and tfe-predict (predict_cli.py) with the packaged model.

Pictures: synthetic faces pasted on a canvas, and a public-domain NASA portrait
(tests/data/astronaut.jpg, see tests/data/README.md). Never an expression data set's face.
"""

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tfe
from tfe import cli
from tfe.data.faces import opencv_unavailable_reason
from tfe.errors import InputError
from tfe.data.synthetic import SyntheticFaces
from tfe.data.transforms import resize_gray

ASTRONAUT = Path(__file__).parent / "data" / "astronaut.jpg"
needs_opencv = pytest.mark.skipif(opencv_unavailable_reason() is not None,
                                  reason=f"face detection: {opencv_unavailable_reason()}")


def two_face_canvas():
    """A 640x400 gray picture with two synthetic faces (150 px) and where they are."""
    grid = SyntheticFaces(seed=0, size=96, jitter=0).expression_grid([0, 1])
    canvas = np.full((400, 640), 128, np.uint8)
    canvas[60:210, 40:190] = resize_gray(grid[0, 0], 150)
    canvas[180:330, 400:550] = resize_gray(grid[1, 5], 150)
    return canvas, [(40, 60, 150, 150), (400, 180, 150, 150)]


def _overlap(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / min(aw * ah, bw * bh)


def test_the_packaged_model_ships_inside_the_package():
    path = tfe.default_model_path()
    assert Path(path).is_file()
    assert Path(path).resolve().is_relative_to(Path(tfe.__file__).resolve().parent)
    assert (Path(path).parent / "MODEL_CARD.md").is_file()
    model = tfe.load_model()
    assert model.classes == ["neutral", "happiness", "surprise", "sadness", "anger",
                             "disgust", "fear", "contempt"]
    assert tfe.load_model(path).classes == model.classes


@needs_opencv
def test_every_face_of_a_picture_gets_a_box_and_probabilities():
    canvas, placed = two_face_canvas()
    found = tfe.Recognizer().detect_emotions(canvas)
    assert len(found) == 2
    for face, where in zip(found, placed):  # largest first, then top to bottom
        assert _overlap(face["box"], where) > 0.5, (face["box"], where)
        assert set(face["emotions"]) == set(tfe.load_model().classes)
        assert sum(face["emotions"].values()) == pytest.approx(1, abs=1e-5)


@needs_opencv
def test_paths_arrays_and_pil_images_give_the_same_faces(tmp_path):
    canvas, _ = two_face_canvas()
    rgb = np.repeat(canvas[..., None], 3, axis=2)
    rgb[..., 0] = np.clip(rgb[..., 0].astype(int) + 20, 0, 255)  # not gray: order matters
    r = tfe.Recognizer()
    want = r.detect_emotions(rgb)
    path = tmp_path / "two.png"
    Image.fromarray(rgb).save(path)
    for other in (r.detect_emotions(path), r.detect_emotions(str(path)),
                  r.detect_emotions(Image.fromarray(rgb)),
                  r.detect_emotions(rgb[..., ::-1].copy(), channels="bgr"),
                  r.detect_emotions(np.dstack([rgb, np.full(canvas.shape, 255, np.uint8)]))):
        assert [f["box"] for f in other] == [f["box"] for f in want]
        for a, b in zip(other, want):
            assert a["emotions"] == pytest.approx(b["emotions"], abs=1e-6)


@needs_opencv
def test_a_picture_without_a_face_gives_an_empty_list(tmp_path, capsys):
    empty = np.random.default_rng(0).integers(100, 140, (300, 400), dtype=np.uint8)
    assert tfe.Recognizer().detect_emotions(empty) == []
    Image.fromarray(empty).save(tmp_path / "wall.png")
    assert cli.predict_main([str(tmp_path / "wall.png"), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == [{"image": str(tmp_path / "wall.png"), "faces": []}]
    assert out.err.strip() == f"tfe-predict: no face found in {tmp_path / 'wall.png'}"


@needs_opencv
def test_the_astronaut_smiles():
    """The public-domain NASA portrait: one face, where it is, and the smile is seen."""
    found = tfe.Recognizer().detect_emotions(ASTRONAUT)
    assert len(found) == 1
    x, y, w, h = found[0]["box"]
    assert 95 < x + w / 2 < 130 and 40 < y + h / 2 < 75  # the face, in the 256 px copy
    assert max(found[0]["emotions"], key=found[0]["emotions"].get) == "happiness"


def test_a_small_image_is_one_face_already_cropped():
    face = SyntheticFaces(seed=0, size=48).expression_grid([0])[0, 1]
    found = tfe.Recognizer().detect_emotions(face)
    assert [f["box"] for f in found] == [[0, 0, 48, 48]]
    # --detect never: any image is one face
    big = np.kron(face, np.ones((4, 4), np.uint8))
    assert tfe.Recognizer(detect="never").detect_emotions(big)[0]["box"] == [0, 0, 192, 192]


def test_bad_arguments_are_refused_in_one_line():
    with pytest.raises(InputError, match="detect: expected"):
        tfe.Recognizer(detect="sometimes")
    with pytest.raises(InputError, match="channels: expected"):
        tfe.Recognizer(detect="never").detect_emotions(np.zeros((8, 8, 3), np.uint8),
                                                       channels="grb")
    with pytest.raises(InputError, match="finite gray levels"):
        tfe.Recognizer(detect="never").detect_emotions(np.full((8, 8), np.nan))
    with pytest.raises(InputError, match="shape"):
        tfe.Recognizer(detect="never").detect_emotions(np.zeros((2, 8, 8, 3), np.uint8))


@needs_opencv
def test_predict_writes_csv_json_and_annotations(tmp_path, capsys):
    canvas, _ = two_face_canvas()
    Image.fromarray(canvas).save(tmp_path / "two.png")
    classes = tfe.load_model().classes
    assert cli.predict_main([str(tmp_path / "two.png"), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 and list(rows[0]) == ["image", "frame", "time_s", "face", "x", "y",
                                                "w", "h", *classes, "label"]
    assert rows[0]["frame"] == rows[0]["time_s"] == ""  # a still image
    assert sum(float(rows[0][c]) for c in classes) == pytest.approx(1, abs=1e-4)
    assert cli.predict_main([str(tmp_path / "two.png"), "--json", "--annotate",
                             str(tmp_path / "out.png")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc[0]["faces"]) == 2
    assert doc[0]["faces"][0]["label"] == rows[0]["label"]
    drawn = np.asarray(Image.open(tmp_path / "out.png"))
    assert drawn.shape == (400, 640, 3) and not np.array_equal(drawn[..., 0], canvas)
    # several images: --annotate names a folder, one picture per image
    Image.fromarray(canvas[:, ::-1]).save(tmp_path / "mirror.png")
    assert cli.predict_main([str(tmp_path / "two.png"), str(tmp_path / "mirror.png"),
                             "--annotate", str(tmp_path / "drawn")]) == 0
    assert sorted(os.listdir(tmp_path / "drawn")) == ["mirror.png", "two.png"]


def test_a_bad_image_is_named_and_the_batch_goes_on(tmp_path, capsys):
    face = SyntheticFaces(seed=0, size=48).expression_grid([0])[0, 1]
    Image.fromarray(face).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    args = [str(tmp_path / "bad.png"), str(tmp_path / "good.png"), "--csv"]
    assert cli.predict_main(args) == 1
    out = capsys.readouterr()
    assert [r["image"] for r in csv.DictReader(io.StringIO(out.out))] == [str(tmp_path / "good.png")]
    err = out.err.splitlines()
    assert len(err) == 2 and err[0].startswith("tfe-predict: error: ") and "bad.png" in err[0]
    assert err[1] == "tfe-predict: 1 of 2 images failed"
    with pytest.raises(SystemExit, match=r"bad\.png"):
        cli.predict_main(args + ["--fail-fast"])
    assert "good.png" not in capsys.readouterr().out


# ---- videos and folders -------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A SYNTHETIC face changing expression: 4 expressions x 6 frames at 10 frames/s."""
    if opencv_unavailable_reason():
        pytest.skip(f"videos: {opencv_unavailable_reason()}")
    from tfe.data.synthetic_video import expression_frames, write_video

    frames, _ = expression_frames(seconds_per_expression=0.6, fps=10)
    path = tmp_path_factory.mktemp("video") / "face.avi"
    write_video(path, frames, fps=10)
    return path, len(frames)


def test_a_video_gives_rows_per_frame_and_a_plot_over_time(clip, tmp_path, capsys):
    path, n = clip
    assert n == 24
    assert cli.predict_main([str(path), "--every", "3", "--csv", "--plot",
                             str(tmp_path / "curve.png")]) == 0
    out = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out.out)))
    frames = sorted({int(r["frame"]) for r in rows})
    assert set(frames) <= set(range(0, n, 3)) and len(frames) >= 6  # most frames: a face
    for r in rows:
        assert float(r["time_s"]) == pytest.approx(int(r["frame"]) / 10, abs=1e-3)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # JSON: one element per frame read, in order
    assert cli.predict_main([str(path), "--every", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["frame"] for d in doc] == list(range(0, n, 3))


def test_a_truncated_or_fake_video_is_named_and_the_rest_goes_on(clip, tmp_path, capsys):
    path, _ = clip
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video\n")
    face = SyntheticFaces(seed=0, size=48).expression_grid([0])[0, 1]
    Image.fromarray(face).save(tmp_path / "face.png")
    rc = cli.predict_main([str(cut), str(fake), str(tmp_path / "face.png"), "--csv"])
    out = capsys.readouterr()
    assert rc == 1
    images = [r["image"] for r in csv.DictReader(io.StringIO(out.out))]
    assert str(tmp_path / "face.png") in images
    errors = [line for line in out.err.splitlines() if " error: " in line]
    assert any("fake.mp4" in e and "cannot read video" in e for e in errors), out.err
    assert any("cut.avi" in e for e in errors) or str(cut) in images, out.err
    assert out.err.splitlines()[-1].startswith("tfe-predict: ")
    assert "of 3 files failed" in out.err.splitlines()[-1]


def test_folders_are_walked_and_batched_like_single_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    grid = SyntheticFaces(seed=1, size=48).expression_grid([0, 1, 2])
    (tmp_path / "a" / "b").mkdir(parents=True)
    paths = []
    for i, face in enumerate(grid.reshape(-1, 48, 48)[:20]):
        p = tmp_path / ("a" if i % 2 else "a/b") / f"f{i:02d}.png"
        Image.fromarray(face).save(p)
        paths.append(p)
    (tmp_path / "a" / ".DS_Store").write_bytes(rng.bytes(10))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    assert cli.predict_main([str(tmp_path / "a"), "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert sorted(d["image"] for d in doc) == sorted(map(str, paths))
    assert "ignored 1 hidden/system entry" in out.err and "notes.txt" in out.err
    r = tfe.Recognizer()
    for d in doc:  # one engine call for all of them gives each image's own answer
        (alone,) = r.detect_emotions(d["image"])
        assert d["faces"][0]["emotions"] == pytest.approx(alone["emotions"], abs=1e-6)


def test_the_c_library_finds_the_packaged_model(c_api):
    import ctypes

    lib = c_api.lib
    lib.tfe_default_model_path.restype = ctypes.c_char_p
    lib.tfe_model_load_default.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    path = Path(lib.tfe_default_model_path().decode())
    assert path.parts[-2:] == ("default_model", "ferplus-resnet18.safetensors")
    if not path.exists():
        assert Path(tfe.default_model_path()).resolve() != path.resolve()
        pytest.skip("an editable install: libtfe is not installed beside the package, so "
                    "there is no packaged model next to it (pip install . puts it there)")
    assert path.resolve() == Path(tfe.default_model_path()).resolve()
    handle = ctypes.c_void_p()
    assert lib.tfe_model_load_default(ctypes.byref(handle)) == 0, c_api._message()
    try:
        face = SyntheticFaces(seed=0, size=48).expression_grid([0])[0, 5]
        probs = np.zeros(8, np.float32)
        assert lib.tfe_predict(handle, face.ctypes.data, 48, 48, 48, 0, probs.ctypes.data) == 0
        want = tfe.load_model().probabilities(face[None])[0]
        np.testing.assert_allclose(probs, want, atol=1e-5)
    finally:
        c_api.free(handle)


# ---- resumable output and Dask ------------------------------------------------------------


def _face_folder(root, n=40):
    grid = SyntheticFaces(seed=2, size=48).expression_grid(range(5))
    root.mkdir(parents=True, exist_ok=True)
    for i, face in enumerate(grid.reshape(-1, 48, 48)[:n]):
        Image.fromarray(face).save(root / f"f{i:02d}.png")
    return sorted(str(p) for p in root.iterdir())


def test_an_interrupted_out_file_resumes_without_redoing_finished_inputs(tmp_path, capsys,
                                                                          monkeypatch):
    files = _face_folder(tmp_path / "faces")
    whole = tmp_path / "whole.csv"
    assert cli.predict_main([str(tmp_path / "faces"), "--out", str(whole)]) == 0
    # interrupted after 7 inputs, the 8th half written
    from tfe import predict_files

    real = predict_files.predict_files

    def dies_after_7(*a, **k):
        for i, r in enumerate(real(*a, **k)):
            if i == 7:
                raise KeyboardInterrupt
            yield r
    part = tmp_path / "part.csv"
    monkeypatch.setattr(predict_files, "predict_files", dies_after_7)
    with pytest.raises(KeyboardInterrupt):
        cli.predict_main([str(tmp_path / "faces"), "--out", str(part)])
    with open(part, "a") as f:
        f.write("half a row of the 8th inp")
    assert len((tmp_path / "part.csv.done").read_text().splitlines()) == 7
    monkeypatch.setattr(predict_files, "predict_files", real)
    seen = []
    monkeypatch.setattr(predict_files, "predict_files",
                        lambda rec, paths, *a, **k: (seen.extend(paths), real(rec, paths, *a, **k))[1])
    capsys.readouterr()
    assert cli.predict_main([str(tmp_path / "faces"), "--out", str(part)]) == 0
    assert "resuming: 7 of 40 inputs already done" in capsys.readouterr().err
    assert seen == files[7:]  # the finished inputs are not done again
    assert part.read_text() == whole.read_text()
    # an existing file without a ledger is not overwritten
    (tmp_path / "other.csv").write_text("precious\n")
    with pytest.raises(SystemExit, match="other.csv: exists, and there is no ledger"):
        cli.predict_main([str(tmp_path / "faces"), "--out", str(tmp_path / "other.csv")])
    assert (tmp_path / "other.csv").read_text() == "precious\n"
    with pytest.raises(SystemExit, match=r"--out .*\.txt: expected a \.csv or \.jsonl"):
        cli.predict_main([str(tmp_path / "faces"), "--out", str(tmp_path / "rows.txt")])


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_single_process_result(tmp_path, capsys):
    pytest.importorskip("distributed", reason="the dask extra (dask[distributed])")
    _face_folder(tmp_path / "faces")
    (tmp_path / "faces" / "zz-bad.png").write_bytes(b"not an image")
    one = tmp_path / "one.jsonl"
    two = tmp_path / "two.jsonl"
    assert cli.predict_main([str(tmp_path / "faces"), "--out", str(one)]) == 1
    assert cli.predict_main([str(tmp_path / "faces"), "--out", str(two), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("zz-bad.png") == 2 and "1 of 41 images failed" in err
    a = [json.loads(line) for line in one.read_text().splitlines()]
    b = [json.loads(line) for line in two.read_text().splitlines()]
    assert [r["image"] for r in a] == [r["image"] for r in b] and len(a) == 40
    for x, y in zip(a, b):
        assert x["faces"][0]["box"] == y["faces"][0]["box"]
        assert x["faces"][0]["emotions"] == pytest.approx(y["faces"][0]["emotions"], abs=1e-6)
