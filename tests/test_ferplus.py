"""FER+ loader (tfe.data.ferplus): FERPlus's label rules on hand-computed vote rows, the
FERPlus folder layout and the fer2013.csv + fer2013new.csv pair, built in tmp_path.

The real copy under $TFE_DATA_DIR or ../shared/data is used only by the last tests, which
skip without it.
"""


import numpy as np
import pytest
from PIL import Image

from helpers import quiet, real_data
from tfe.data.folders import BadImage
from tfe.data.ferplus import CLASSES, ferplus_targets, load_ferplus, read_label_csv




# Vote rows (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown,
# NF) with what FERPlus's reference reader does with them:
#   majority: class or None (dropped); soft: distribution over the 8 emotions or None.
CASES = [
    # single votes are outliers: sadness's 1 vote goes; 4 of 9 is no majority; the soft
    # rule keeps neutral + anger (7 of 9 votes >= 75 %)
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], None, [4 / 7, 0, 0, 0, 3 / 7, 0, 0, 0]),
    # 6 of 8 remaining votes (the unknown votes count in the total)
    ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], 0, [1, 0, 0, 0, 0, 0, 0, 0]),
    ([0, 0, 0, 0, 0, 0, 0, 0, 10, 0], None, None),  # unknown
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None, None),  # not a face
    ([0, 0, 0, 0, 0, 0, 0, 0, 4, 6], None, None),
    ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], None, [0.5, 0.5, 0, 0, 0, 0, 0, 0]),  # tie: no majority
    ([0, 0, 0, 0, 0, 0, 0, 6, 2, 2], 7, [0, 0, 0, 0, 0, 0, 0, 1]),  # contempt 6 of 10
    ([3, 3, 3, 1, 0, 0, 0, 0, 0, 0], None, [1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0]),
    ([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], None, None),  # five classes tie: more than 3
    # unknown ties with the top emotion: it is dropped, neutral alone holds <= 50 %
    ([4, 0, 0, 0, 0, 0, 0, 0, 4, 2], None, None),
    # unknown second: the soft rule stops there, neutral alone holds 60 % > 50 %
    ([6, 0, 0, 0, 0, 0, 0, 0, 4, 0], 0, [1, 0, 0, 0, 0, 0, 0, 0]),
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None, None),  # every vote an outlier
    ([0, 0, 9, 0, 0, 0, 0, 0, 0, 0], 2, [0, 0, 1, 0, 0, 0, 0, 0]),  # 9 votes (one missing)
]


def test_majority_rule():
    votes = np.array([c[0] for c in CASES])
    keep, labels, soft = ferplus_targets(votes, "majority")
    assert keep.tolist() == [c[1] is not None for c in CASES]
    assert labels.tolist() == [c[1] for c in CASES if c[1] is not None]
    assert np.array_equal(soft, np.eye(8, dtype=np.float32)[labels])


@pytest.mark.parametrize("mode", ["probability", "crossentropy"])
def test_soft_rule(mode):
    votes = np.array([c[0] for c in CASES])
    keep, labels, soft = ferplus_targets(votes, mode)
    assert keep.tolist() == [c[2] is not None for c in CASES]
    want = np.array([c[2] for c in CASES if c[2] is not None], np.float32)
    np.testing.assert_allclose(soft, want, rtol=1e-6, atol=1e-7)
    assert labels.tolist() == want.argmax(1).tolist()  # first class on a tie


def test_plain_rule():
    votes = np.array([[4, 0, 0, 1, 3, 2, 0, 0, 0, 0], [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],
                      [0, 0, 0, 0, 0, 0, 0, 0, 6, 4], [2, 0, 0, 0, 0, 0, 0, 0, 8, 0]])
    keep, labels, _ = ferplus_targets(votes, "majority", vote_rule="plain")
    assert keep.tolist() == [True, False, False, False] and labels.tolist() == [0]
    keep, labels, soft = ferplus_targets(votes, "crossentropy", vote_rule="plain")
    assert keep.tolist() == [True, True, False, True]
    np.testing.assert_allclose(soft[0], [0.4, 0, 0, 0.1, 0.3, 0.2, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(soft[2], [1, 0, 0, 0, 0, 0, 0, 0])


def test_targets_argument_errors():
    with pytest.raises(ValueError, match="label_mode"):
        ferplus_targets(np.zeros((1, 10)), "vote")
    with pytest.raises(ValueError, match="vote_rule"):
        ferplus_targets(np.zeros((1, 10)), vote_rule="strict")
    with pytest.raises(ValueError, match=r"votes: expected \[N, 10\]"):
        ferplus_targets(np.zeros((1, 8)))


# --- FERPlus folder layout ----------------------------------------------------------------


def _face(rng, side=48):
    return rng.integers(0, 256, (side, side), dtype=np.uint8)


def make_ferplus(root, rng, splits=("FER2013Train", "FER2013Valid"), box=None):
    """FERPlus folders whose label.csv rows are the CASES; image names fer%07d.png."""
    n = 0
    for split in splits:
        d = root / split
        d.mkdir(parents=True)
        lines = []
        for votes, _, _ in CASES:
            name = f"fer{n:07d}.png"
            Image.fromarray(_face(rng)).save(d / name)
            b = box or "(0, 0, 48, 48)"
            lines.append(f'{name},"{b}",' + ",".join(map(str, votes)))
            n += 1
        (d / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_folders_majority(tmp_path, rng):
    root = make_ferplus(tmp_path, rng)
    logs = []
    out = load_ferplus(root, log=logs.append)
    assert set(out) == {"train", "val", "test"} and out["test"] is None
    assert any("test split missing" in m and "FER2013Test" in m for m in logs)
    want = [c[1] for c in CASES if c[1] is not None]
    for split in ("train", "val"):
        s = out[split]
        assert s.classes == list(CLASSES) and s.labels.tolist() == want
        assert s.soft_labels is None and s.images.shape == (len(want), 48, 48)
        assert len(set(s.subjects)) == len(s)  # image names: one "subject" per image
    assert out["train"].subjects[0] == "fer0000001.png"
    # The images are the files, unchanged at size 48.
    first = np.asarray(Image.open(root / "FER2013Train" / "fer0000001.png"))
    assert np.array_equal(out["train"].images[0], first)


def test_folders_soft_mode_val_stays_majority(tmp_path, rng):
    root = make_ferplus(tmp_path, rng)
    out = load_ferplus(root, "crossentropy", size=32, log=quiet)
    n_soft = sum(c[2] is not None for c in CASES)
    n_major = sum(c[1] is not None for c in CASES)
    assert len(out["train"]) == n_soft and out["train"].images.shape[1:] == (32, 32)
    assert out["train"].soft_labels.shape == (n_soft, 8)
    assert len(out["val"]) == n_major  # FERPlus evaluates with the majority rule
    assert np.array_equal(out["val"].soft_labels, np.eye(8, dtype=np.float32)[out["val"].labels])


def test_folders_face_box_crop(tmp_path, rng):
    root = make_ferplus(tmp_path, rng, splits=("FER2013Valid",), box="(8, 4, 32, 40)")
    out = load_ferplus(root, splits=("val",), size=48, log=quiet)
    assert out["train"] is None and out["test"] is None
    raw = np.asarray(Image.open(root / "FER2013Valid" / out["val"].subjects[0]))
    from tfe.data.transforms import resize_gray

    assert np.array_equal(out["val"].images[0], resize_gray(raw[4:44, 8:40], 48))


def test_folders_errors(tmp_path, rng):
    root = make_ferplus(tmp_path, rng, splits=("FER2013Train",))
    label = root / "FER2013Train" / "label.csv"
    rows = label.read_text().splitlines()
    label.write_text("\n".join(rows[:2] + [rows[2] + ",3"] + rows[3:]) + "\n")
    with pytest.raises(ValueError, match=r"label.csv:3: expected 12 columns"):
        load_ferplus(root, log=quiet)
    label.write_text("\n".join(rows[:4] + [rows[4].replace('"(0, 0, 48, 48)"', "box")]) + "\n")
    with pytest.raises(ValueError, match=r"label.csv:5: malformed face box"):
        load_ferplus(root, log=quiet)
    label.write_text("\n".join(rows[:1] + [rows[1].rsplit(",", 1)[0] + ",x"]) + "\n")
    with pytest.raises(ValueError, match=r"label.csv:2: vote for 'NF' is 'x', expected a whole number"):
        load_ferplus(root, log=quiet)
    label.write_text("\n".join(rows) + "\n")
    (root / "FER2013Train" / "fer0000001.png").unlink()
    with pytest.raises(BadImage, match=r"label.csv:\d+: image fer0000001.png not found"):
        load_ferplus(root, log=quiet)
    (root / "FER2013Train" / "fer0000001.png").write_bytes(b"garbage")
    with pytest.raises(BadImage, match="fer0000001.png"):
        load_ferplus(root, log=quiet)
    logs = []
    out = load_ferplus(root, skip_bad=True, log=logs.append)
    assert len(out["train"]) == sum(c[1] is not None for c in CASES) - 1
    assert out["train"].subjects[0] != "fer0000001.png"
    assert any("skipped 1 unreadable" in m for m in logs)
    (root / "FER2013Train" / "label.csv").unlink()
    with pytest.raises(FileNotFoundError, match="label.csv: no such file"):
        load_ferplus(root, log=quiet)


def test_not_a_ferplus_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither FERPlus folders"):
        load_ferplus(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_ferplus(tmp_path / "missing")
    with pytest.raises(ValueError, match="splits"):
        load_ferplus(tmp_path, splits=("training",))


def test_read_label_csv_header_and_votes(tmp_path):
    p = tmp_path / "label.csv"
    p.write_text('Image name,box,' + ",".join(f"c{i}" for i in range(10)) + "\n"
                 'a.png,"(0, 0, 48, 48)",1,2,3,4,0,0,0,0,0,0\n')
    names, boxes, votes = read_label_csv(p)
    assert names == ["a.png"] and boxes.tolist() == [[0, 0, 48, 48]]
    assert votes.tolist() == [[1, 2, 3, 4, 0, 0, 0, 0, 0, 0]]


# --- fer2013.csv + fer2013new.csv ---------------------------------------------------------


def make_pair(root, rng, usages=("Training",) * 4 + ("PublicTest",) * 3 + ("PrivateTest",) * 2,
              unnamed=(2,)):
    old = ["emotion,pixels,Usage"]
    new = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
           "unknown,NF"]
    votes = [CASES[1][0], CASES[6][0], CASES[0][0], CASES[12][0]]
    pixels = []
    for i, usage in enumerate(usages):
        img = _face(rng)
        pixels.append(img)
        old.append(f"{i % 7},{' '.join(map(str, img.ravel()))},{usage}")
        name = "" if i in unnamed else f"fer{i:07d}.png"
        new.append(f"{usage},{name}," + ",".join(map(str, votes[i % len(votes)])))
    (root / "fer2013.csv").write_text("\n".join(old) + "\n")
    (root / "fer2013new.csv").write_text("\n".join(new) + "\n")
    return root, pixels


def test_pair_layout(tmp_path, rng):
    root, pixels = make_pair(tmp_path, rng)
    logs = []
    out = load_ferplus(root, log=logs.append)
    # Training rows 0-3: row 2 has no name (dropped); rows 0, 1, 3 -> neutral, contempt,
    # surprise by majority.
    assert out["train"].labels.tolist() == [0, 7, 2]
    assert out["train"].subjects.tolist() == ["fer0000000.png", "fer0000001.png",
                                              "fer0000003.png"]
    assert np.array_equal(out["train"].images[1], pixels[1])
    # PublicTest rows 4-6 carry the votes of cases 1, 6, 0: the last has no majority.
    assert out["val"].labels.tolist() == [0, 7]
    assert out["test"].labels.tolist() == [2, 0]  # PrivateTest rows 7-8
    assert any("dropped 1 row(s) without an image name" in m for m in logs)


def test_pair_layout_soft_and_missing_split(tmp_path, rng):
    root, _ = make_pair(tmp_path, rng, usages=("Training",) * 4 + ("PublicTest",) * 2,
                        unnamed=())
    logs = []
    out = load_ferplus(root, "probability", size=24, log=logs.append)
    assert len(out["train"]) == 4 and out["train"].images.shape[1:] == (24, 24)
    np.testing.assert_allclose(out["train"].soft_labels[2], CASES[0][2], rtol=1e-6)
    assert out["test"] is None and any("test split missing" in m for m in logs)


def test_pair_layout_errors(tmp_path, rng):
    root, _ = make_pair(tmp_path, rng)
    new = (root / "fer2013new.csv").read_text().splitlines()
    old = (root / "fer2013.csv").read_text().splitlines()
    (root / "fer2013new.csv").write_text("\n".join(new[:-1]) + "\n")
    with pytest.raises(ValueError, match="fer2013new.csv: ends at line 9"):
        load_ferplus(root, log=quiet)
    swapped = new[:5] + [new[5].replace("PublicTest", "Training", 1)] + new[6:]
    (root / "fer2013new.csv").write_text("\n".join(swapped) + "\n")
    with pytest.raises(ValueError, match="fer2013new.csv:6: Usage 'Training' differs"):
        load_ferplus(root, log=quiet)
    (root / "fer2013new.csv").write_text("\n".join(new) + "\n")
    bad = old[:2] + [old[2].replace(",", ",1 2 3 ", 1)] + old[3:]
    (root / "fer2013.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(ValueError, match="fer2013.csv:3: 2307 pixels do not make a square"):
        load_ferplus(root, log=quiet)
    (root / "fer2013.csv").unlink()
    with pytest.raises(FileNotFoundError, match="fer2013.csv: no such file"):
        load_ferplus(root, log=quiet)


# --- the real copy (skips without it) -----------------------------------------------------

# FERPlus majority rule on the copy's label.csv files (computed once with this loader and
# checked against a transcription of FERPlus's reference reader).
REAL_MAJORITY = {"FER2013Train": (28558, [8733, 7284, 3136, 3022, 2098, 116, 536, 120]),
                 "FER2013Valid": (3579, [1180, 862, 411, 348, 289, 25, 60, 16]),
                 "FER2013Test": (3573, [1083, 892, 394, 382, 269, 16, 86, 15])}
# The data README's plain arg-max vote counts (fer2013new.csv, Training rows).
README_TRAIN = [10309, 7528, 3562, 3515, 2467, 191, 652, 165, 170, 2]


def test_real_label_counts():
    root = real_data("ferplus")
    for split, (rows, counts) in REAL_MAJORITY.items():
        names, _, votes = read_label_csv(root / split / "label.csv")
        assert len(names) == rows
        keep, labels, _ = ferplus_targets(votes, "majority")
        assert np.bincount(labels, minlength=8).tolist() == counts
    import csv

    with open(root / "fer2013new.csv", newline="") as f:
        rows = [r for r in csv.reader(f)][1:]
    train = np.array([[int(v) for v in r[2:]] for r in rows if r[0] == "Training" and r[1]])
    assert np.bincount(train.argmax(1), minlength=10).tolist() == README_TRAIN
    # The majority rule only removes images: never more per class than the plain arg-max.
    assert all(m <= r for m, r in zip(REAL_MAJORITY["FER2013Train"][1], README_TRAIN))


def test_real_valid_and_test_splits_load():
    # The copy holds PrivateTest (FER2013Test) too: both evaluation splits load, train is
    # not read when not asked for, and nothing is reported missing.
    logs = []
    out = load_ferplus(real_data("ferplus"), splits=("val", "test"), log=logs.append)
    for split, folder in (("val", "FER2013Valid"), ("test", "FER2013Test")):
        images = out[split]
        assert len(images) == sum(REAL_MAJORITY[folder][1])
        assert images.images.shape[1:] == (48, 48) and images.num_classes == 8
        assert np.bincount(images.labels, minlength=8).tolist() == REAL_MAJORITY[folder][1]
    assert out["train"] is None
    assert not any("missing" in m for m in logs)
