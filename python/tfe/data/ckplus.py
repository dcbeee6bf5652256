"""CK+ (Extended Cohn-Kanade) in the layouts users have.

- The official distribution: ``root/cohn-kanade-images/S005/001/S005_001_00000001.png``
  (593 sequences of 640x490 frames, from neutral to the peak of the expression) and
  ``root/Emotion/S005/001/S005_001_00000011_emotion.txt`` (one float code, 0-7 = neutral,
  anger, contempt, disgust, fear, happy, sadness, surprise, for the 327 sequences that have
  a validated label). As in the paper (Sec. 4.1): per labelled sequence the last three
  frames with the sequence's label and the first frame as neutral, so 327 sequences give
  1,308 images in 8 classes. The face is cut out of each frame with ``faces.crop_face``
  (OpenCV Haar cascade and eye alignment) when OpenCV is installed, otherwise with a fixed
  central crop; ``frames_description`` records which.
- Folder per emotion (CK+48 and similar copies): ``root/<emotion>/S010_004_00000017.png``;
  the images are used as they are (already cropped), classes in the paper's order
  (CK+48: 7 classes, no neutral; copies with a ``neutral`` folder: 8).

Subjects ('S005') and sequences come from the file names, so folds can keep each person
on one side.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import numpy as np

from ..errors import InputError
from .folders import (EXPRESSIONS, BadImage, canonical_expression, ckplus_subject_strict,
                      class_folders, load_class_folders, read_image)
from .imageset import ImageSet
from .listing import Passed, is_hidden_or_system, list_folder, require_folder
from .transforms import resize_gray

__all__ = ["central_crop", "detect_layout", "frames_description", "load_ckplus",
           "read_emotion_file"]

IMAGES_DIR = "cohn-kanade-images"
EMOTION_DIR = "Emotion"
# Frames per labelled sequence: the last PEAK_FRAMES carry its label, the first is neutral.
PEAK_FRAMES = 3

# The fixed crop used without OpenCV: a square of this fraction of the frame height,
# centred horizontally, its centre this fraction of the height from the top. CK+ subjects
# sit centred and frontal in front of the camera, the face filling roughly the middle half
# of the 490-px height.
CENTRAL_SIDE = 0.6
CENTRAL_CENTRE_Y = 0.5

_FRAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.[A-Za-z]+$")
_EMOTION = re.compile(r"^(S\d+)_(\d+)_(\d+)_emotion\.txt$")


def detect_layout(root) -> str:
    """'official' (cohn-kanade-images/ + Emotion/) or 'folders' (one folder per emotion)."""
    root = require_folder(root)
    has_images = os.path.isdir(os.path.join(root, IMAGES_DIR))
    has_emotion = os.path.isdir(os.path.join(root, EMOTION_DIR))
    if has_images or has_emotion:
        if not has_images:
            raise FileNotFoundError(f"{os.path.join(root, IMAGES_DIR)}: no such folder (the "
                                    f"official CK+ layout needs it beside {EMOTION_DIR}/)")
        if not has_emotion:
            raise FileNotFoundError(f"{os.path.join(root, EMOTION_DIR)}: no such folder (the "
                                    f"official CK+ layout needs the labels beside "
                                    f"{IMAGES_DIR}/)")
        return "official"
    return "folders"


def read_emotion_file(path) -> int:
    """The class code (0-7) in a CK+ ``*_emotion.txt`` file; ValueError names the file."""
    try:
        with open(path, "r", encoding="ascii", errors="strict") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise InputError(f"{path}: malformed emotion file (not text)") from None
    fields = text.split()
    if len(fields) != 1:
        raise InputError(f"{path}: malformed emotion file: expected one number, got "
                         f"{len(fields)} fields")
    try:
        value = float(fields[0])
    except ValueError:
        raise InputError(f"{path}: malformed emotion code {fields[0]!r}") from None
    if not np.isfinite(value) or value != int(value) or not 0 <= value < len(EXPRESSIONS):
        raise InputError(f"{path}: unknown emotion code {fields[0]} (expected 0-7: "
                         f"{', '.join(EXPRESSIONS)})")
    return int(value)


def central_crop(image, size=48) -> np.ndarray:
    """The fixed crop used when OpenCV is missing: a square of CENTRAL_SIDE x the height,
    centred horizontally at CENTRAL_CENTRE_Y x the height, resized to size x size."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    side = max(1, min(int(round(CENTRAL_SIDE * h)), w, h))
    top = min(max(int(round(CENTRAL_CENTRE_Y * h - side / 2)), 0), h - side)
    left = (w - side) // 2
    return resize_gray(img[top : top + side, left : left + side], size)


def _labelled_sequences(root):
    """[(subject, sequence, label frame number, code, emotion file)] sorted, from Emotion/."""
    emotion_root = os.path.join(root, EMOTION_DIR)
    out = []
    for dirpath, dirnames, filenames in os.walk(emotion_root):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden_or_system(d))
        for f in sorted(filenames):
            if is_hidden_or_system(f):
                continue
            path = os.path.join(dirpath, f)
            m = _EMOTION.match(f)
            if not m:
                if f.lower().endswith(".txt"):
                    raise InputError(f"{path}: not a CK+ emotion file name "
                                     "(expected S005_001_00000011_emotion.txt)")
                continue
            out.append((m.group(1), m.group(2), int(m.group(3)), read_emotion_file(path), path))
    if not out:
        raise InputError(f"{emotion_root}: no *_emotion.txt label files inside")
    return out


def _sequence_frames(root, subject, sequence, label_frame, emotion_path, passed):
    """Sorted [(frame number, path)] of one labelled sequence, up to its labelled frame;
    entries that are not its frames are noted in ``passed``."""
    folder = os.path.join(root, IMAGES_DIR, subject, sequence)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{emotion_path}: labelled sequence has no frames ({folder}: "
                                "no such folder)")
    frames = []
    for f in list_folder(folder, passed, subfolders_used=False)[1]:
        m = _FRAME.match(f)
        if not m or m.group(1) != subject or m.group(2) != sequence:
            passed.other.append(os.path.join(folder, f))  # not a frame of this sequence
            continue
        frames.append((int(m.group(3)), os.path.join(folder, f)))
    frames.sort()
    if not frames:
        raise InputError(f"{emotion_path}: labelled sequence has no frames in {folder}")
    numbers = [n for n, _ in frames]
    if label_frame not in numbers:
        raise InputError(f"{emotion_path}: labels frame {label_frame}, which is not among the "
                         f"{len(frames)} frames in {folder} (frames {numbers[0]}-{numbers[-1]})")
    return [fp for fp in frames if fp[0] <= label_frame]


class _Cropper:
    """Face crop of official frames: OpenCV when available, else the fixed central crop.

    A frame where the detector finds no face reuses the box of the closest frame of the
    same sequence where it found one (the subject hardly moves within a sequence); a
    sequence with no detection at all falls back to the central crop. Both are counted.
    """

    def __init__(self, size, use_opencv):
        self.size = size
        self.faces = None
        if use_opencv:
            from . import faces

            if faces.opencv_available():
                self.faces = faces
        self.counts = Counter()

    def sequence(self, images):
        if self.faces is None:
            self.counts["central"] += len(images)
            return [central_crop(im, self.size) for im in images]
        crops = [self.faces.crop_face(im, self.size) for im in images]
        found = [i for i, c in enumerate(crops) if c is not None]
        out = []
        for i, (im, c) in enumerate(zip(images, crops)):
            if c is not None:
                self.counts["aligned" if c.aligned else "detected"] += 1
                out.append(c.image)
            elif found:
                j = min(found, key=lambda k: abs(k - i))
                x, y, w, h = crops[j].box
                g = np.asarray(im)
                side = max(w, h)
                top = min(max(y + h // 2 - side // 2, 0), max(g.shape[0] - side, 0))
                left = min(max(x + w // 2 - side // 2, 0), max(g.shape[1] - side, 0))
                self.counts["neighbour box"] += 1
                out.append(resize_gray(g[top : top + side, left : left + side], self.size))
            else:
                self.counts["central"] += 1
                out.append(central_crop(im, self.size))
        return out

    def summary(self):
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))


def _load_official(root, size, skip_bad, log, use_opencv):
    sequences = _labelled_sequences(root)
    cropper = _Cropper(size, use_opencv)
    images, labels, subjects, skipped, short = [], [], [], [], 0
    passed = Passed()
    for subject, sequence, label_frame, code, emotion_path in sequences:
        frames = _sequence_frames(root, subject, sequence, label_frame, emotion_path, passed)
        # First frame neutral, last PEAK_FRAMES frames labelled; a sequence shorter than
        # PEAK_FRAMES + 1 frames gives what it has without using any frame twice.
        if len(frames) > 1:
            picked = [(frames[0], 0)] + [(fp, code) for fp in
                                         frames[max(1, len(frames) - PEAK_FRAMES):]]
        else:
            picked = [(frames[0], code)]
        short += len(frames) < PEAK_FRAMES + 1
        raw, raw_labels = [], []
        for (_, path), label in picked:
            try:
                raw.append(read_image(path))
                raw_labels.append(label)
            except BadImage as e:
                if not skip_bad:
                    raise
                skipped.append(str(e))
        if not raw:
            continue
        images += cropper.sequence(raw)
        labels += raw_labels
        subjects += [subject] * len(raw)
    if passed.notice(root):
        log(passed.notice(root))
    if skipped:
        log(f"{root}: skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
    if short:
        log(f"{root}: {short} labelled sequence(s) have fewer than {PEAK_FRAMES + 1} frames; "
            "used the frames they have")
    if not images:
        raise InputError(f"{root}: no readable frames in the labelled sequences")
    log(f"{root}: {len(sequences)} labelled sequences, {len(images)} frames; face crop: "
        f"{cropper.summary()}")
    return ImageSet(np.stack(images), np.array(labels, np.int64), list(EXPRESSIONS),
                    np.array(subjects), name="ckplus:" + os.path.basename(os.path.normpath(root)))


def load_ckplus(root, size=48, skip_bad=False, log=print, use_opencv=True) -> ImageSet:
    """All labelled CK+ images under ``root`` as an ImageSet (subjects like 'S010').

    The official layout gives the paper's 8 classes (neutral first, CK+ code order); the
    folder layout gives the classes it has folders for, in the same order. ``skip_bad``:
    unreadable images are skipped and counted in the log instead of being an error.
    ``use_opencv=False`` forces the fixed central crop on official frames (for a
    reproducible crop on machines with and without OpenCV).
    """
    layout = detect_layout(root)
    if layout == "official":
        return _load_official(os.fspath(root), size, skip_bad, log, use_opencv)
    return load_class_folders(root, size=size, skip_bad=skip_bad, log=log,
                              subject_of=ckplus_subject_strict, expressions_only=True,
                              name="ckplus:" + os.path.basename(os.path.normpath(root)))


def _crop_description(use_opencv):
    from . import faces

    if use_opencv and faces.opencv_available():
        return ("face crop: " + faces.describe() + "; a frame without a detection reuses "
                "the nearest detected box of its sequence, a sequence without any the "
                "fixed central crop")
    why = "disabled" if not use_opencv else "OpenCV not available"
    return (f"face crop: fixed central crop ({why}): square of {CENTRAL_SIDE:g} x frame "
            f"height centred horizontally, centre at {CENTRAL_CENTRE_Y:g} x height")


def frames_description(root, use_opencv=True) -> str:
    """What the images are (which frames, how cropped), for the results' protocol record."""
    layout = detect_layout(root)
    root = os.fspath(root)
    if layout == "official":
        n = len(_labelled_sequences(root))
        return (f"official CK+ layout: {n} labelled sequences; first frame of each as "
                f"neutral + last {PEAK_FRAMES} frames with the sequence's label (8 classes); "
                + _crop_description(use_opencv))
    classes = class_folders(root)
    canon = [canonical_expression(c) for c in classes]
    per_sequence = Counter()
    for d in classes:
        for f in list_folder(os.path.join(root, d), Passed(), subfolders_used=False)[1]:
            m = _FRAME.match(f)
            if m:
                per_sequence[(d, m.group(1), m.group(2))] += 1
    shape = Counter(per_sequence.values())
    frames = ", ".join(f"{k} frame(s): {v}" for k, v in sorted(shape.items())) or "no CK+ names"
    neutral = "with a neutral class" if "neutral" in canon else "no neutral class"
    return (f"class folders as given ({len(classes)} classes, {neutral}); images per "
            f"(class, sequence): {frames}; crops as made by the copy (not re-cropped)")
