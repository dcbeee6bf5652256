"""FER+ (FER2013 images with Microsoft's FERPlus crowd labels).

Two layouts are read:

- Microsoft's FERPlus tools layout: ``root/FER2013Train|FER2013Valid|FER2013Test/label.csv``
  with rows ``fer0000000.png,"(0, 0, 48, 48)",n,h,su,sa,a,d,f,c,unknown,NF`` (the face box
  and 10 annotators' votes; the images lie beside the csv);
- the original Kaggle ``root/fer2013.csv`` (``emotion,pixels,Usage``: 48x48 pixels as a
  space-separated string; Usage Training / PublicTest / PrivateTest) with FERPlus's
  ``root/fer2013new.csv`` (``Usage,Image name,<10 votes>``, the same rows in the same
  order). Rows without an image name (FERPlus dropped those images) are dropped.

Splits: FERPlus's train / valid / test = FER2013's Training / PublicTest / PrivateTest.
A split that is absent (a copy without FER2013Test/) is reported in the log and returned
as None.

Classes, FERPlus order: neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt. Label modes (names and rules from FERPlus's reference reader, ``src/ferplus.py``
of github.com/microsoft/FERPlus, which produced the paper's VGG13 baselines):

- all modes first drop single votes (FERPlus's "outlier removal": a class with one vote
  out of ten counts as zero votes);
- ``"majority"``: an image keeps the class holding MORE THAN HALF of the remaining votes
  (unknown and not-a-face votes included in the total; such a class is unique by
  construction). Images without a strict majority, or whose majority is unknown or
  not-a-face, are dropped. Hard labels; ``soft_labels`` None.
- ``"probability"`` / ``"crossentropy"``: FERPlus's rule: take the classes with the most
  remaining votes, ties together, until they hold at least 75 % of the votes or 3 classes
  are taken, stopping at unknown/not-a-face; drop the image if the kept classes hold
  <= 50 % of the votes, more than 3 classes tie, or unknown/not-a-face has the most
  votes. ``soft_labels`` = the kept emotion votes normalised over the 8 emotions;
  ``labels`` = their argmax (the first class on a tie), for accuracy. The two modes
  differ only in training (sample a one-hot target per epoch from ``soft_labels`` vs
  cross-entropy against it), so the data are the same.
- ``vote_rule="plain"`` replaces FERPlus's processing by the plain one: no outlier removal;
  majority = the unique top class, dropped when it is unknown/not-a-face or tied; soft =
  the emotion votes normalised after removing unknown/not-a-face (dropped if none).

Validation and test always use the majority rule, as FERPlus's ``train.py`` does in every
training mode (in the soft modes they carry one-hot ``soft_labels``).

Subjects: FER2013 has no person ids, so each image is its own subject (its image name).
Folds made over FER+ therefore degenerate to image-level folds; FER+ is evaluated on its
fixed train / valid / test splits instead.
"""

from __future__ import annotations

import csv
import os
import re

import numpy as np

from ..errors import InputError
from .imageset import ImageSet
from .images import BadImage, read_image
from .listing import require_folder
from .transforms import resize_gray

__all__ = ["CLASSES", "FOLDERS", "VOTE_COLUMNS", "ferplus_targets", "load_ferplus",
           "read_label_csv"]

CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
           "contempt")
VOTE_COLUMNS = CLASSES + ("unknown", "NF")
SPLITS = ("train", "val", "test")
FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
LABEL_MODES = ("majority", "probability", "crossentropy")
VOTE_RULES = ("ferplus", "plain")

_BOX = re.compile(r"^\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\)$")
_EMOTIONS = len(CLASSES)


def _process_ferplus(votes, mode):
    """FERPlus's ``_process_data`` for one image: a distribution over the 10 vote columns,
    or None when the image is dropped (FERPlus: "unknown")."""
    raw = np.where(votes <= 1, 0.0, votes.astype(np.float64))  # outlier removal
    total = raw.sum()
    size = len(raw)
    emotion = np.zeros(size)
    if mode == "majority":
        top = raw.max()
        if not top > 0.5 * total:
            return None
        emotion[int(np.argmax(raw))] = top
    else:
        taken, count, valid = 0.0, 0, True
        while taken < 0.75 * total and count < 3 and valid:
            top = raw.max()
            for i in range(size):
                if raw[i] == top:
                    emotion[i] = top
                    raw[i] = 0
                    taken += top
                    count += 1
                    if i >= _EMOTIONS:  # unknown / not-a-face among the top classes
                        valid = False
                        if emotion.sum() > top:  # emotions ahead of it: drop it, keep them
                            emotion[i] = 0
                            count -= 1
                        break
        if emotion.sum() <= 0.5 * total or count > 3:
            return None
    if int(np.argmax(emotion)) >= _EMOTIONS:
        return None
    return emotion


def _process_plain(votes, mode):
    v = votes.astype(np.float64)
    if mode == "majority":
        top = v.max()
        i = int(np.argmax(v))
        if top <= 0 or (v == top).sum() > 1 or i >= _EMOTIONS:
            return None
        out = np.zeros(len(v))
        out[i] = top
        return out
    emotion = v.copy()
    emotion[_EMOTIONS:] = 0
    return emotion if emotion.sum() > 0 else None


def _check_modes(label_mode, vote_rule):
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode: expected one of {', '.join(LABEL_MODES)}, got "
                         f"{label_mode!r}")
    if vote_rule not in VOTE_RULES:
        raise ValueError(f"vote_rule: expected one of {', '.join(VOTE_RULES)}, got "
                         f"{vote_rule!r}")


def ferplus_targets(votes, label_mode="majority", vote_rule="ferplus"):
    """Apply a label rule to vote counts.

    Args:
        votes: int [N, 10] vote counts in VOTE_COLUMNS order.
    Returns:
        (keep bool [N], labels int64 [N_kept], soft float32 [N_kept, 8]): the images kept,
        their class (argmax, first on ties) and their target distribution over CLASSES.
    """
    _check_modes(label_mode, vote_rule)
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] != len(VOTE_COLUMNS):
        raise ValueError(f"votes: expected [N, {len(VOTE_COLUMNS)}], got {votes.shape}")
    mode = "majority" if label_mode == "majority" else "soft"
    process = _process_ferplus if vote_rule == "ferplus" else _process_plain
    keep = np.zeros(len(votes), bool)
    soft = []
    for i, v in enumerate(votes):
        e = process(v, mode)
        if e is not None:
            keep[i] = True
            e = e[:_EMOTIONS]
            soft.append(e / e.sum())
    soft = np.array(soft, np.float32).reshape(-1, _EMOTIONS)
    return keep, soft.argmax(1).astype(np.int64), soft


def _parse_votes(fields, where):
    """Vote counts of one row: whole numbers >= 0 ("3" or "3.0"). FERPlus's reader takes
    any float (so "inf" or "nan" would flow into its label rule); here any other value is
    an error naming the row and column: a count that is not one means a damaged file."""
    if len(fields) != len(VOTE_COLUMNS):
        raise InputError(f"{where}: expected {len(VOTE_COLUMNS)} vote columns "
                         f"({', '.join(VOTE_COLUMNS)}), got {len(fields)}")
    votes = []
    for column, text in zip(VOTE_COLUMNS, fields):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not np.isfinite(value) or value != int(value) or value < 0 \
                or value > 2**31:
            raise InputError(f"{where}: vote for {column!r} is {text.strip()!r}, expected a "
                             "whole number >= 0")
        votes.append(int(value))
    return votes


def _csv_rows(path):
    """(line number, row) of a CSV file; InputError naming the file (and line) when it is
    not a readable text CSV."""
    line = 0
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for line, row in enumerate(csv.reader(f), 1):
                yield line, row
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text CSV file (not UTF-8)") from None
    except csv.Error as e:
        raise InputError(f"{path}:{line + 1}: malformed CSV ({e})") from None


def read_label_csv(path):
    """FERPlus ``label.csv`` -> (image names [N], boxes int [N, 4] as (x, y, w, h),
    votes int64 [N, 10]). A malformed row is an error naming the file and line."""
    return _read_label_rows(path)[:3]


def _read_label_rows(path):
    """``read_label_csv`` plus the line number of each row."""
    names, boxes, votes, lines, first = [], [], [], [], {}
    for line, row in _csv_rows(path):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{path}:{line}"
        if line == 1 and row[0].strip().lower() in ("image name", "image", "name"):
            continue  # a header row
        if len(row) != 2 + len(VOTE_COLUMNS):
            raise InputError(f"{where}: expected {2 + len(VOTE_COLUMNS)} columns (image "
                             f"name, face box, {len(VOTE_COLUMNS)} votes), got {len(row)}")
        name = row[0].strip()
        if not name or name != os.path.basename(name) or name in (".", ".."):
            raise InputError(f"{where}: image name {row[0]!r} is not a file name in the "
                             "folder of the label file")
        # The same image twice would be trained on (or scored) twice, possibly with
        # conflicting votes: a merged or damaged label file.
        if name in first:
            raise InputError(f"{where}: image {name} is listed again (first at line "
                             f"{first[name]})")
        first[name] = line
        m = _BOX.match(row[1].strip())
        if not m:
            raise InputError(f"{where}: malformed face box {row[1]!r} (expected "
                             "'(x, y, w, h)')")
        names.append(name)
        boxes.append([int(g) for g in m.groups()])
        votes.append(_parse_votes(row[2:], where))
        lines.append(line)
    if not names:
        raise InputError(f"{path}: no rows")
    return names, np.array(boxes, np.int64), np.array(votes, np.int64), lines


def _crop(image, box, size, where):
    h, w = image.shape[:2]
    x, y, bw, bh = (int(v) for v in box)
    if (x, y, bw, bh) != (0, 0, w, h):
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)
        if x1 <= x0 or y1 <= y0:
            raise InputError(f"{where}: face box {tuple(box)} lies outside the {w}x{h} image")
        image = image[y0:y1, x0:x1]
    return resize_gray(image, size)


def _split_set(name, split, images, names, keep, labels, soft, label_mode, folder=None):
    # In the soft modes val / test were read with the majority rule, so their soft labels
    # are the one-hot majority targets FERPlus evaluates with.
    names = np.asarray(names)[keep]
    soft = None if label_mode == "majority" else soft
    sources = None if folder is None else np.array([os.path.join(folder, n) for n in names])
    return ImageSet(images, labels, list(CLASSES), names, name=f"{name}-{split}",
                    soft_labels=soft, sources=sources)


def _log_split(log, where, split, n_rows, keep, labels, rule):
    counts = np.bincount(labels, minlength=_EMOTIONS)
    log(f"{where}: {split}: {int(keep.sum())} of {n_rows} images kept ({rule}); "
        + ", ".join(f"{c} {n}" for c, n in zip(CLASSES, counts)))


def _load_folders(root, label_mode, vote_rule, size, splits, skip_bad, log):
    out = {}
    for split in SPLITS:
        if split not in splits:
            out[split] = None
            continue
        folder = os.path.join(root, FOLDERS[split])
        label_path = os.path.join(folder, "label.csv")
        if not os.path.isdir(folder):
            log(f"{root}: {split} split missing ({FOLDERS[split]}/ not found): returned as None")
            out[split] = None
            continue
        if not os.path.isfile(label_path):
            raise FileNotFoundError(f"{label_path}: no such file (FERPlus label file of the "
                                    f"{split} split)")
        names, boxes, votes, lines = _read_label_rows(label_path)
        mode = label_mode if split == "train" else "majority"
        keep, labels, soft = ferplus_targets(votes, mode, vote_rule)
        images, kept_rows, skipped = [], [], []
        for i in np.flatnonzero(keep):
            path = os.path.join(folder, names[i])
            try:
                if not os.path.isfile(path):
                    raise BadImage(f"{label_path}:{lines[i]}: image {names[i]} not found in "
                                   f"{folder}")
                images.append(_crop(read_image(path), boxes[i], size, path))
                kept_rows.append(i)
            except BadImage as e:
                if not skip_bad:
                    raise
                skipped.append(str(e))
        if skipped:
            log(f"{folder}: skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
            ok = np.isin(np.flatnonzero(keep), kept_rows)
            labels, soft = labels[ok], soft[ok]
            keep = np.zeros_like(keep)
            keep[kept_rows] = True
        if not images:
            raise InputError(f"{label_path}: no image is kept by the {mode} rule")
        _log_split(log, folder, split, len(names), keep, labels, f"{mode}, {vote_rule} rule")
        out[split] = _split_set("ferplus", split, np.stack(images), names, keep, labels, soft,
                                label_mode, folder)
    return out


def _read_pair(root, splits, size, log):
    """fer2013.csv + fer2013new.csv -> {split: (images uint8 [N, 48, 48], names, votes)}."""
    old_path = os.path.join(root, "fer2013.csv")
    new_path = os.path.join(root, "fer2013new.csv")
    for p in (old_path, new_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: no such file (the FER2013 csv layout needs "
                                    "fer2013.csv and fer2013new.csv side by side)")
    old = (row for _, row in _csv_rows(old_path))
    new = (row for _, row in _csv_rows(new_path))
    h_old, h_new = next(old, None), next(new, None)
    if not h_old or [c.strip().lower() for c in h_old] != ["emotion", "pixels", "usage"]:
        raise InputError(f"{old_path}:1: expected the header 'emotion,pixels,Usage', got "
                         f"{h_old}")
    if not h_new or len(h_new) != 2 + len(VOTE_COLUMNS) or \
            h_new[0].strip().lower() != "usage":
        raise InputError(f"{new_path}:1: expected the header 'Usage,Image name,"
                         f"{','.join(VOTE_COLUMNS)}', got {h_new}")
    wanted = {USAGE[s]: s for s in splits}
    data = {s: ([], [], []) for s in splits}
    line, no_name = 1, 0
    seen = {}
    while True:
        r_old, r_new = next(old, None), next(new, None)
        line += 1
        if r_old is None and r_new is None:
            break
        if r_old is None or r_new is None:
            short = old_path if r_old is None else new_path
            raise InputError(f"{short}: ends at line {line - 1}, the other file goes on: "
                             "fer2013new.csv must have the rows of fer2013.csv")
        if not r_old and not r_new:
            continue
        if len(r_old) != 3:
            raise InputError(f"{old_path}:{line}: expected 3 columns, got {len(r_old)}")
        if len(r_new) != 2 + len(VOTE_COLUMNS):
            raise InputError(f"{new_path}:{line}: expected {2 + len(VOTE_COLUMNS)} "
                             f"columns, got {len(r_new)}")
        usage = r_old[2].strip()
        if r_new[0].strip() != usage:
            raise InputError(f"{new_path}:{line}: Usage {r_new[0]!r} differs from "
                             f"{old_path}'s {usage!r}: the files are not in the same order")
        if usage not in USAGE.values():
            raise InputError(f"{old_path}:{line}: unknown Usage {usage!r} (expected "
                             f"{', '.join(USAGE.values())})")
        name = r_new[1].strip()
        if not name:
            no_name += 1
            continue
        if usage not in wanted:
            continue
        votes = _parse_votes(r_new[2:], f"{new_path}:{line}")
        try:
            pixels = np.array(r_old[1].split(), dtype=np.int64)
        except ValueError:
            raise InputError(f"{old_path}:{line}: pixels are not integers") from None
        side = int(round(np.sqrt(pixels.size)))
        if pixels.size == 0 or side * side != pixels.size:
            raise InputError(f"{old_path}:{line}: {pixels.size} pixels do not make a square "
                             "image (FER2013: 2304 = 48x48)")
        if pixels.min() < 0 or pixels.max() > 255:
            raise InputError(f"{old_path}:{line}: pixel values outside 0-255")
        image = pixels.astype(np.uint8).reshape(side, side)
        seen[name] = seen.get(name, 0) + 1
        d = data[wanted[usage]]
        d[0].append(image if side == size else resize_gray(image, size))
        d[1].append(name)
        d[2].append(votes)
    if no_name:
        log(f"{new_path}: dropped {no_name} row(s) without an image name (not in FERPlus)")
    dups = sorted(n for n, c in seen.items() if c > 1)
    if dups:
        log(f"{new_path}: {len(dups)} image name(s) appear more than once (e.g. {dups[0]}); "
            "each row is kept as its own image")
    return {s: (d[0], d[1], np.array(d[2], np.int64).reshape(-1, len(VOTE_COLUMNS)))
            for s, d in data.items()}


def _load_pair(root, label_mode, vote_rule, size, splits, log):
    rows = _read_pair(root, splits, size, log)
    out = {}
    for split in SPLITS:
        if split not in splits:
            out[split] = None
            continue
        images, names, votes = rows[split]
        if not images:
            log(f"{root}: {split} split missing (no {USAGE[split]} rows): returned as None")
            out[split] = None
            continue
        mode = label_mode if split == "train" else "majority"
        keep, labels, soft = ferplus_targets(votes, mode, vote_rule)
        if not keep.any():
            raise InputError(f"{root}: {split}: no image is kept by the {mode} rule")
        _log_split(log, root, split, len(names), keep, labels, f"{mode}, {vote_rule} rule")
        stacked = np.stack([im for im, k in zip(images, keep) if k])
        out[split] = _split_set("fer2013", split, stacked, names, keep, labels, soft,
                                label_mode)
    return out


def load_ferplus(root, label_mode="majority", size=48, log=print, vote_rule="ferplus",
                 splits=SPLITS, skip_bad=False) -> dict:
    """FER+ as ``dict(train=ImageSet, val=ImageSet, test=ImageSet or None)``.

    Args:
        root: a folder with FER2013Train/ FER2013Valid/ [FER2013Test/] (label.csv + images),
            or with fer2013.csv and fer2013new.csv.
        label_mode: "majority", "probability" or "crossentropy" (module docstring); applies
            to the training split; validation and test always use the majority rule.
        size: output images are size x size (FER's are 48x48).
        vote_rule: "ferplus" (the reference reader's processing) or "plain".
        splits: the splits to read (others are returned as None without a log line).
        skip_bad: skip unreadable image files (folder layout), counting them in the log.

    Subjects are image names: FER has no person ids, so folds over it are image-level.
    """
    root = os.fspath(root)
    _check_modes(label_mode, vote_rule)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"splits: unknown {unknown} (expected some of {', '.join(SPLITS)})")
    require_folder(root)
    if any(os.path.isdir(os.path.join(root, f)) for f in FOLDERS.values()):
        return _load_folders(root, label_mode, vote_rule, size, splits, skip_bad, log)
    if os.path.isfile(os.path.join(root, "fer2013.csv")) or \
            os.path.isfile(os.path.join(root, "fer2013new.csv")):
        return _load_pair(root, label_mode, vote_rule, size, splits, log)
    raise FileNotFoundError(f"{root}: neither FERPlus folders ({', '.join(FOLDERS.values())}"
                            " with label.csv) nor fer2013.csv + fer2013new.csv found")
