"""Image folders (tfe.data.folders) and subject-independent folds (tfe.data.folds).

Fixtures are small generated images written in the real layouts (CK+48-style class folders,
folder-per-person identity sets in several image formats). The real copies under
$TFE_DATA_DIR or ../shared/data are used only by the last tests, which skip without them.
"""


import numpy as np
import pytest
from PIL import Image

from helpers import quiet, real_data
from tfe.data.folders import (BadImage, EXPRESSIONS, ckplus_subject, load_class_folders,
                              load_person_folders, read_image)
from tfe.data.folds import fold_list, hash_of, make_folds



def _img(rng, h=60, w=50, rgb=False):
    shape = (h, w, 3) if rgb else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def make_ck48(root, rng, people=6, classes=("anger", "happy", "surprise", "contempt")):
    """CK+48-style: <emotion>/S0xx_00y_000000zz.png, 3 frames per (subject, class)."""
    n = 0
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for p in range(people):
            for frame in (10, 11, 12):
                Image.fromarray(_img(rng, 48, 48)).save(
                    root / c / f"S{100 + p:03d}_{ci + 1:03d}_{frame:08d}.png")
                n += 1
    return n


def make_people(root, rng, formats=("png", "jpg", "pgm", "gif"), people=3, per_person=4):
    for p in range(people):
        d = root / f"person{p}"
        d.mkdir(parents=True)
        for i in range(per_person):
            fmt = formats[i % len(formats)]
            im = Image.fromarray(_img(rng, 70, 56, rgb=fmt in ("png", "jpg")))
            if fmt == "gif":
                im = im.convert("P")
            im.save(d / f"{p}_{i:04d}.{fmt}")



# --- class folders ------------------------------------------------------------------------


def test_class_folders_ck48_layout(tmp_path, rng):
    n = make_ck48(tmp_path / "ck", rng)
    data = load_class_folders(tmp_path / "ck", size=32, log=quiet)
    assert len(data) == n
    # Paper order (CK+ codes), not alphabetical.
    assert data.classes == ["anger", "contempt", "happy", "surprise"]
    assert data.images.shape == (n, 32, 32) and data.images.dtype == np.uint8
    assert sorted(set(data.subjects)) == [f"S{100 + p:03d}" for p in range(6)]
    assert data.class_counts().tolist() == [18, 18, 18, 18]


def test_class_folders_aliases_and_neutral(tmp_path, rng):
    for d in ("neutral", "happiness", "sad"):
        (tmp_path / d).mkdir()
        Image.fromarray(_img(rng)).save(tmp_path / d / "S005_001_00000001.png")
    data = load_class_folders(tmp_path, log=quiet)
    assert data.classes == ["neutral", "happy", "sadness"]
    assert all(c in EXPRESSIONS for c in data.classes)


def test_class_folders_other_names_sorted(tmp_path, rng):
    for d in ("zebra", "apple"):
        (tmp_path / d).mkdir()
        Image.fromarray(_img(rng)).save(tmp_path / d / "x.png")
    assert load_class_folders(tmp_path, log=quiet).classes == ["apple", "zebra"]


def test_class_folders_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_class_folders(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class folders"):
        load_class_folders(tmp_path)
    make_ck48(tmp_path / "ck", rng, people=2)
    (tmp_path / "ck" / "fear").mkdir()
    with pytest.raises(ValueError, match="'fear' has no images"):
        load_class_folders(tmp_path / "ck", log=quiet)


def test_bad_image_names_file_and_skip_bad_counts(tmp_path, rng):
    make_ck48(tmp_path, rng, people=2)
    bad = tmp_path / "anger" / "S100_001_00000099.png"
    good = (tmp_path / "anger" / "S100_001_00000010.png").read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # truncated PNG
    (tmp_path / "happy" / "S100_002_00000099.png").write_bytes(b"not an image")
    with pytest.raises(BadImage, match="S100_00[12]_00000099.png"):
        load_class_folders(tmp_path, log=quiet)
    logs = []
    data = load_class_folders(tmp_path, skip_bad=True, log=logs.append)
    assert len(data) == 4 * 2 * 3
    assert len(logs) == 1 and "skipped 2 unreadable" in logs[0]


def test_read_image_formats(tmp_path, rng):
    make_people(tmp_path, rng, people=1)
    for f in sorted((tmp_path / "person0").iterdir()):
        im = read_image(f)
        assert im.dtype == np.uint8 and im.shape[:2] == (70, 56), f.name
    with pytest.raises(BadImage, match="nothing.png"):
        read_image(tmp_path / "nothing.png")


def test_ckplus_subject():
    assert ckplus_subject("/a/b/S010_004_00000017.png") == "S010"
    assert ckplus_subject("other_name.png") == "other_name"


# --- person folders -----------------------------------------------------------------------


def test_person_folders_formats_and_names(tmp_path, rng):
    make_people(tmp_path / "setA", rng)
    make_people(tmp_path / "setB", rng, people=2, formats=("pgm",))
    logs = []
    data = load_person_folders([tmp_path / "setA", tmp_path / "setB"], size=40, log=logs.append)
    assert data.num_classes == 5 and len(data) == 20
    assert data.classes[0] == "setA/person0" and data.classes[-1] == "setB/person1"
    assert (data.subjects == np.array(data.classes)[data.labels]).all()
    assert data.images.shape[1:] == (40, 40) and not logs


def test_person_folders_min_images_and_bad(tmp_path, rng):
    make_people(tmp_path, rng, people=3, per_person=2)
    (tmp_path / "person0" / "0_0000.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(BadImage, match="0_0000.png"):
        load_person_folders(tmp_path, log=quiet)
    logs = []
    data = load_person_folders(tmp_path, skip_bad=True, log=logs.append)
    assert data.num_classes == 2  # person0 has one readable image left
    assert any("skipped 1 unreadable" in m for m in logs)
    assert any("left out 1 people" in m for m in logs)
    with pytest.raises(FileNotFoundError):
        load_person_folders(tmp_path / "missing")


# --- folds --------------------------------------------------------------------------------


def _fixture_labels(rng, people=60, per=12, classes=5):
    subjects = np.repeat([f"S{p:03d}" for p in range(people)], per)
    labels = rng.integers(0, classes, len(subjects))
    return subjects, labels


@pytest.mark.parametrize("k", [3, 5, 10])
def test_subject_folds_disjoint_and_complete(rng, k):
    subjects, labels = _fixture_labels(rng)
    folds = make_folds(subjects, labels, k=k, seed=3)
    assert len(folds) == k
    test_count = np.zeros(len(labels), int)
    for f in folds:
        parts = [set(subjects[f.train]), set(subjects[f.val]), set(subjects[f.test])]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(f.train) + len(f.val) + len(f.test) == len(labels)
        test_count[f.test] += 1
    assert (test_count == 1).all()  # every image in exactly one test fold


def test_subject_folds_class_balance(rng):
    subjects, labels = _fixture_labels(rng, people=80)
    k = 8
    folds = make_folds(subjects, labels, k=k, seed=0)
    target = np.bincount(labels) / k
    for f in folds:
        counts = np.bincount(labels[f.test], minlength=len(target))
        assert np.all(np.abs(counts - target) <= 0.15 * target + 3), (counts, target)


def test_image_folds_share_subjects(rng):
    subjects, labels = _fixture_labels(rng)
    folds = make_folds(subjects, labels, k=5, seed=0, kind="image")
    test_count = np.zeros(len(labels), int)
    for f in folds:
        test_count[f.test] += 1
    assert (test_count == 1).all()
    # The leaky protocol: people appear on both sides.
    assert set(subjects[folds[0].train]) & set(subjects[folds[0].test])


def test_folds_errors(rng):
    subjects, labels = _fixture_labels(rng, people=4)
    with pytest.raises(ValueError, match="k must be >= 3"):
        make_folds(subjects, labels, k=2)
    with pytest.raises(ValueError, match="4 people cannot fill 10"):
        make_folds(subjects, labels, k=10)
    with pytest.raises(ValueError, match="unknown kind"):
        make_folds(subjects, labels, k=3, kind="random")


def test_fold_list_and_hash_stable(rng):
    subjects, labels = _fixture_labels(rng)
    a = fold_list(make_folds(subjects, labels, k=5, seed=1), subjects)
    b = fold_list(make_folds(subjects, labels, k=5, seed=1), subjects)
    c = fold_list(make_folds(subjects, labels, k=5, seed=2), subjects)
    assert a == b and hash_of(a) == hash_of(b)
    assert hash_of(a) != hash_of(c)
    assert hash_of(a).startswith("sha256:") and len(hash_of(a)) == 7 + 64
    assert sum(e["sizes"]["test"] for e in a) == len(labels)
    named = fold_list(make_folds(subjects, labels, k=5, seed=1), subjects,
                      names=[f"img{i}" for i in range(len(labels))])
    assert sorted(n for e in named for n in e["test_images"]) == sorted(
        f"img{i}" for i in range(len(labels)))


# --- real copies (skip without them) ------------------------------------------------------


def test_real_ckplus48_folders_and_folds():
    data = load_class_folders(real_data("ckplus48"), log=quiet)
    assert len(data) == 981 and data.num_classes == 7 and len(data.people()) == 118
    assert data.class_counts().tolist() == [135, 54, 177, 75, 207, 84, 249]
    folds = make_folds(data.subjects, data.labels, k=10, seed=0)
    for f in folds:
        assert not set(data.subjects[f.test]) & set(data.subjects[f.train])
        assert not set(data.subjects[f.val]) & set(data.subjects[f.train])


def test_real_identity_folders():
    data = load_person_folders(real_data("orl_faces"), size=48, log=quiet)
    assert data.num_classes == 40 and len(data) == 400
