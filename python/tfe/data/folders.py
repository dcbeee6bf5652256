"""Image folders: one folder per class (CK+48-style expression sets) or per person
(CASIA-WebFace-style identity sets), read into an ImageSet of size x size grayscale faces.

Every problem names the file: an unreadable or truncated image is an error, unless the
caller asked to skip bad images, in which case they are skipped and counted (never
silently). A missing folder, an empty class or an unknown class name is an error.
"""

from __future__ import annotations

import os
import re

import numpy as np

from .imageset import ImageSet
from .transforms import resize_gray

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pnm", ".gif", ".bmp", ".tif",
                    ".tiff")

# The paper's 8 expression classes in CK+'s code order (0-7), and the folder names used
# for them by common copies.
EXPRESSIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
_ALIASES = {"angry": "anger", "happiness": "happy", "sad": "sadness", "surprised": "surprise",
            "disgusted": "disgust", "fearful": "fear", "contemptuous": "contempt"}

# CK+ file names: S010_004_00000017.png = subject S010, sequence 004, frame 17.
_CKPLUS_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)")


class BadImage(ValueError):
    pass


def read_image(path, data: bytes | None = None) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3] from any format Pillow reads; BadImage names the file.

    data: the file's bytes when the caller has read them already (``path`` then only
    names the file in errors)."""
    import io

    from PIL import Image

    try:
        with Image.open(path if data is None else io.BytesIO(data)) as im:
            im.load()
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB") if im.mode in ("RGBA", "P", "CMYK") else im.convert("L")
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"{path}: cannot read image ({e})") from None


def _image_files(folder):
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))


def _load(paths, size, skip_bad):
    images, kept, skipped = [], [], []
    for p in paths:
        try:
            images.append(resize_gray(read_image(p), size))
            kept.append(p)
        except BadImage as e:
            if not skip_bad:
                raise
            skipped.append(str(e))
    return images, kept, skipped


def canonical_expression(name: str) -> str:
    n = name.strip().lower()
    return _ALIASES.get(n, n)


def ckplus_subject(filename: str) -> str:
    """'S010' for CK+ names like S010_004_00000017.png; the stem otherwise."""
    m = _CKPLUS_NAME.match(os.path.basename(filename))
    return m.group(1) if m else os.path.splitext(os.path.basename(filename))[0]


def load_class_folders(root, size=48, subject_of=ckplus_subject, name=None, skip_bad=False,
                       log=print) -> ImageSet:
    """``root/<class>/<image>``: expression classes in the paper's order where the folder
    names are expression names (CK+48 has 7, without neutral), sorted otherwise."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such folder")
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                     and not d.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no class folders inside")
    canon = {d: canonical_expression(d) for d in folders}
    if all(c in EXPRESSIONS for c in canon.values()):
        folders.sort(key=lambda d: EXPRESSIONS.index(canon[d]))
        classes = [canon[d] for d in folders]
    else:
        classes = folders
    images, labels, subjects, skipped = [], [], [], []
    for label, d in enumerate(folders):
        files = [os.path.join(root, d, f) for f in _image_files(os.path.join(root, d))]
        if not files:
            raise ValueError(f"{os.path.join(root, d)}: class '{classes[label]}' has no images")
        imgs, kept, bad = _load(files, size, skip_bad)
        if not imgs:
            raise ValueError(f"{os.path.join(root, d)}: no readable images")
        images += imgs
        labels += [label] * len(imgs)
        subjects += [subject_of(p) for p in kept]
        skipped += bad
    if skipped:
        log(f"{root}: skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
    return ImageSet(np.stack(images), np.array(labels, np.int64), classes, np.array(subjects),
                    name=name or os.path.basename(os.path.normpath(root)))


def load_person_folders(roots, size=48, min_images=2, skip_bad=False, log=print) -> ImageSet:
    """Identity data: ``root/<person>/<image>`` for each root (several sets combine; people
    are named '<root name>/<person>'). People with fewer than ``min_images`` readable
    images are left out, and the log says how many."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    images, labels, names, skipped, too_few = [], [], [], [], 0
    for root in map(os.fspath, roots):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root}: no such folder")
        base = os.path.basename(os.path.normpath(root))
        people = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                        and not d.startswith("."))
        if not people:
            raise ValueError(f"{root}: no person folders inside")
        for person in people:
            files = [os.path.join(root, person, f)
                     for f in _image_files(os.path.join(root, person))]
            imgs, _, bad = _load(files, size, skip_bad)
            skipped += bad
            if len(imgs) < min_images:
                too_few += 1
                continue
            labels += [len(names)] * len(imgs)
            names.append(f"{base}/{person}")
            images += imgs
    if skipped:
        log(f"identity data: skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
    if too_few:
        log(f"identity data: left out {too_few} people with fewer than {min_images} images")
    if not names:
        raise ValueError(f"{', '.join(map(str, roots))}: no person has {min_images}+ images")
    labels = np.array(labels, np.int64)
    return ImageSet(np.stack(images), labels, names, np.array(names)[labels],
                    name="identity:" + "+".join(os.path.basename(os.path.normpath(r))
                                                for r in map(os.fspath, roots)))
