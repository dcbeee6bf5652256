"""Face detection and crop (tfe.data.faces): OpenCV is optional, so the 'missing OpenCV'
behaviour is tested everywhere and the detection tests skip without it.

The faces come from tfe's procedural generator pasted into a camera-sized frame (the tests
are about the crop and alignment logic around the Haar cascade, not the cascade); the real
ORL copy under $TFE_DATA_DIR or ../shared/data adds one check on real faces.
"""

import sys
import types

import numpy as np
import pytest

from helpers import real_data
from tfe.data import faces



@pytest.fixture
def no_cache():
    faces._opencv.cache_clear()
    yield
    faces._opencv.cache_clear()


def test_missing_opencv_is_a_clear_error(monkeypatch, no_cache):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    assert not faces.opencv_available()
    assert "opencv-python-headless" in faces.opencv_unavailable_reason()
    with pytest.raises(ImportError, match="face detection needs OpenCV.*pip install"):
        faces.crop_face(np.zeros((60, 60), np.uint8))


def test_opencv_without_cascades(monkeypatch, no_cache):
    fake = types.SimpleNamespace(__version__="5.0.0", data=types.SimpleNamespace(haarcascades=""))
    monkeypatch.setitem(sys.modules, "cv2", fake)
    assert "no bundled Haar cascades" in faces.opencv_unavailable_reason()


def test_describe():
    text = faces.describe(size=64, align=True, margin=0.1)
    assert "haarcascade_frontalface_default.xml" in text and "64x64" in text
    assert "eyes" in text and "enlarged by 0.1" in text
    assert "eyes" not in faces.describe(align=False)


# --- with OpenCV --------------------------------------------------------------------------


def _need_opencv():
    pytest.importorskip("cv2", reason="face detection needs opencv-python-headless")
    if not faces.opencv_available():
        pytest.skip(faces.opencv_unavailable_reason())


def _frame(face, top=140, left=220, value=90):
    im = np.full((490, 640), value, np.uint8)
    s = face.shape[0]
    im[top : top + s, left : left + s] = face
    return im


def _rotate(image, angle):
    import cv2

    h, w = image.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def generated_faces():
    from tfe.data.synthetic import SyntheticFaces

    return SyntheticFaces(seed=0, size=200).identity_set(6, 1).images


def test_crop_face_finds_and_crops(generated_faces):
    _need_opencv()
    found = 0
    for face in generated_faces:
        crop = faces.crop_face(_frame(face), size=48)
        if crop is None:
            continue
        found += 1
        x, y, w, h = crop.box
        assert crop.image.shape == (48, 48) and crop.image.dtype == np.uint8
        # The box lies on the pasted face (rows 140-340, columns 220-420).
        assert 180 <= x + w / 2 <= 460 and 100 <= y + h / 2 <= 380 and w >= 100
        assert "48x48" in crop.description
    assert found >= 4
    rgb = np.repeat(_frame(generated_faces[1])[..., None], 3, axis=2)
    assert faces.crop_face(rgb) is not None


def test_no_face_gives_none():
    _need_opencv()
    rng = np.random.default_rng(0)
    assert faces.crop_face(np.full((490, 640), 120, np.uint8)) is None
    assert faces.crop_face(rng.integers(0, 256, (120, 160), dtype=np.uint8)) is None
    assert faces.detect_faces(np.zeros((100, 100), np.uint8)) == []


def test_eye_alignment_undoes_roll(generated_faces):
    _need_opencv()
    corr = []
    for face in generated_faces:
        base = faces.crop_face(_frame(face))
        if base is None or not base.aligned:
            continue
        for angle in (-10.0, 10.0):
            crop = faces.crop_face(_rotate(_frame(face), angle))
            if crop is None or not crop.aligned:
                continue
            # Turning the image counter-clockwise by `angle` lowers the measured roll by it.
            assert abs((crop.roll - base.roll) + angle) < 4.0, (crop.roll, base.roll, angle)
            a = base.image.astype(float).ravel()
            b = crop.image.astype(float).ravel()
            corr.append(np.corrcoef(a, b)[0, 1])
    if len(corr) < 2:
        pytest.skip("too few generated faces with two detected eyes")
    # After alignment the crops of the tilted and the upright frame show the same upright
    # face, give or take the Haar box size (which sets the scale).
    assert np.median(corr) > 0.85, corr


def test_align_off(generated_faces):
    _need_opencv()
    for face in generated_faces:
        crop = faces.crop_face(_frame(face), align=False, margin=0.2)
        if crop is not None:
            assert not crop.aligned and crop.roll == 0.0 and "not aligned" in crop.description
            return
    pytest.skip("no generated face detected")


def test_real_orl_faces_detected():
    _need_opencv()
    from tfe.data.folders import read_image

    root = real_data("orl_faces")
    paths = sorted(root.glob("s*/1.pgm"))[:20]
    hits = sum(faces.crop_face(read_image(p)) is not None for p in paths)
    assert len(paths) == 20 and hits >= 14
