"""Image folders: one folder per class (CK+48-style expression sets) or per person
(CASIA-WebFace-style identity sets), read into an ImageSet of size x size grayscale faces.

Every problem names the file. A missing folder, a data path that is a file, an empty
class, no images at all, or (for CK+) an unknown emotion folder or a file name without a
subject is an error. Hidden/system entries (``__MACOSX/``, ``.DS_Store``, ...) and files
that are not images of a class or person are ignored, and one notice line says how many.

An unreadable image (truncated, corrupt, a decompression bomb, ``images.read_image``) stops
the load with an error naming it: a damaged copy of a data set would otherwise train and
score on fewer images than its published counts without anyone noticing. ``skip_bad=True``
(API only) skips such images instead and counts them in one log line.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..errors import InputError
from .imageset import ImageSet
from .images import BadImage, read_image
from .listing import IMAGE_EXTENSIONS, Passed, list_folder, require_folder
from .transforms import resize_gray

__all__ = ["BadImage", "EXPRESSIONS", "IMAGE_EXTENSIONS", "canonical_expression",
           "ckplus_subject", "ckplus_subject_strict", "load_class_folders",
           "load_person_folders", "read_image"]

# The paper's 8 expression classes in CK+'s code order (0-7), and the folder names used
# for them by common copies.
EXPRESSIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
_ALIASES = {"angry": "anger", "happiness": "happy", "sad": "sadness", "surprised": "surprise",
            "disgusted": "disgust", "fearful": "fear", "contemptuous": "contempt"}

# CK+ file names: S010_004_00000017.png = subject S010, sequence 004, frame 17.
CKPLUS_FILE_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)")


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
    m = CKPLUS_FILE_NAME.match(os.path.basename(filename))
    return m.group(1) if m else os.path.splitext(os.path.basename(filename))[0]


def ckplus_subject_strict(path: str) -> str:
    """'S010' for CK+ names like S010_004_00000017.png; InputError naming the file for any
    other name. Not skipped and not guessed: the subject decides which fold an image goes
    to, so a file without one would either become an extra "person" (putting that person's
    real images on both sides of a fold) or silently change the image count."""
    m = CKPLUS_FILE_NAME.match(os.path.basename(path))
    if not m:
        raise InputError(f"{path}: not a CK+ file name (expected S<subject>_<sequence>_"
                         "<frame>, e.g. S010_004_00000017.png): its person is unknown, so "
                         "subject-independent folds cannot place it; move it out of the "
                         "data folder")
    return m.group(1)


def _class_order(root, folders, expressions_only):
    """(folders in class order, class names). Expression folders (names or aliases) take
    the paper's order; a set of other names is sorted, unless ``expressions_only``."""
    canon = {d: canonical_expression(d) for d in folders}
    unknown = [d for d in folders if canon[d] not in EXPRESSIONS]
    if unknown and (expressions_only or len(unknown) < len(folders)):
        known = ", ".join(EXPRESSIONS) + " (or " + ", ".join(sorted(_ALIASES)) + ")"
        raise InputError(f"{os.path.join(root, unknown[0])}: unknown emotion folder "
                         f"{unknown[0]!r} (expected one of {known})")
    if unknown:
        return folders, list(folders)
    by_class = {}
    for d in folders:
        if canon[d] in by_class:
            raise InputError(f"{root}: folders {by_class[canon[d]]!r} and {d!r} are both the "
                             f"class {canon[d]!r}")
        by_class[canon[d]] = d
    folders = sorted(folders, key=lambda d: EXPRESSIONS.index(canon[d]))
    return folders, [canon[d] for d in folders]


def class_folders(root, passed=None):
    """The class folder names under ``root`` (sorted), hidden/system entries and stray
    files noted in ``passed``."""
    root = require_folder(root)
    passed = Passed() if passed is None else passed
    folders, stray_images = list_folder(root, passed)
    if not folders:
        found = f" (found {len(stray_images)} images directly in it)" if stray_images else ""
        raise InputError(f"{root}: no class folders inside{found}: expected "
                         "<folder>/<class>/<image>")
    passed.other += [os.path.join(root, f) for f in stray_images]
    return folders


def load_class_folders(root, size=48, subject_of=ckplus_subject, name=None, skip_bad=False,
                       log=print, expressions_only=False) -> ImageSet:
    """``root/<class>/<image>``: expression classes in the paper's order where the folder
    names are expression names (CK+48 has 7, without neutral), sorted otherwise
    (``expressions_only``: other names are an error). A mix of expression and other
    names is an error (a misspelt emotion would otherwise reorder every class)."""
    root = os.fspath(root)
    passed = Passed()
    folders, classes = _class_order(root, class_folders(root, passed), expressions_only)
    images, labels, subjects, sources, skipped = [], [], [], [], []
    for label, d in enumerate(folders):
        folder = os.path.join(root, d)
        files = [os.path.join(folder, f) for f in list_folder(folder, passed, False)[1]]
        if not files:
            raise InputError(f"{folder}: class '{classes[label]}' has no images")
        people = [subject_of(p) for p in files]  # before decoding: names fail fast
        imgs, kept, bad = _load(files, size, skip_bad)
        if not imgs:
            raise InputError(f"{folder}: no readable images")
        images += imgs
        labels += [label] * len(imgs)
        kept = set(kept)
        subjects += [s for p, s in zip(files, people) if p in kept]
        sources += [p for p in files if p in kept]
        skipped += bad
    notice = passed.notice(root)
    if notice:
        log(notice)
    if skipped:
        log(f"{root}: skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
    return ImageSet(np.stack(images), np.array(labels, np.int64), classes, np.array(subjects),
                    name=name or os.path.basename(os.path.normpath(root)),
                    sources=np.array(sources))


def load_person_folders(roots, size=48, min_images=2, skip_bad=False, log=print) -> ImageSet:
    """Identity data: ``root/<person>/<image>`` for each root (several sets combine; people
    are named '<root name>/<person>'). People with fewer than ``min_images`` readable
    images are left out, and the log says how many."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    images, labels, names, sources, skipped, too_few = [], [], [], [], [], 0
    for root in map(os.fspath, roots):
        passed = Passed()
        base = os.path.basename(os.path.normpath(root))
        people, stray = list_folder(require_folder(root), passed)
        if not people:
            raise InputError(f"{root}: no person folders inside: expected "
                             "<folder>/<person>/<image>")
        passed.other += [os.path.join(root, f) for f in stray]
        for person in people:
            folder = os.path.join(root, person)
            files = [os.path.join(folder, f) for f in list_folder(folder, passed, False)[1]]
            imgs, kept, bad = _load(files, size, skip_bad)
            skipped += bad
            if len(imgs) < min_images:
                too_few += 1
                continue
            labels += [len(names)] * len(imgs)
            names.append(f"{base}/{person}")
            images += imgs
            sources += kept
        notice = passed.notice(root)
        if notice:
            log(notice)
    if skipped:
        log(f"identity data: skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
    if too_few:
        log(f"identity data: left out {too_few} people with fewer than {min_images} images")
    if not names:
        raise InputError(f"{', '.join(map(str, roots))}: no person has {min_images}+ images")
    labels = np.array(labels, np.int64)
    return ImageSet(np.stack(images), labels, names, np.array(names)[labels],
                    name="identity:" + "+".join(os.path.basename(os.path.normpath(r))
                                                for r in map(os.fspath, roots)),
                    sources=np.array(sources))


def load_unlabelled_faces(roots, size=48, log=print) -> ImageSet:
    """Every image under the folders (recursively; e.g. FER+'s FER2013Train) as faces
    without labels, for distillation only; unreadable images are counted and skipped."""
    from ..teacher.files import image_files

    roots = [os.fspath(r) for r in roots]
    for root in roots:
        require_folder(root)
    paths = image_files(roots)
    images, kept, bad = _load(paths, size, skip_bad=True)
    if bad:
        log(f"distillation faces: skipped {len(bad)} unreadable image(s), first: {bad[0]}")
    if not images:
        raise InputError(f"{', '.join(roots)}: no readable images")
    return ImageSet(np.stack(images), None, [], np.array(kept), sources=np.array(kept),
                    name="faces:" + "+".join(os.path.basename(os.path.normpath(r))
                                             for r in roots))
