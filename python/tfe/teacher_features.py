"""A face teacher's descriptors for the images of an ImageSet, read from the cache that
``tfe-embed`` filled (keyed by file content; NumPy only, no dlib), and the control that
replaces each image's descriptor by the person's descriptor from *other* recordings."""

from __future__ import annotations

import os

import numpy as np

from .data.folders import CKPLUS_FILE_NAME
from .errors import InputError


def teacher_descriptors(imageset, cache_dir, what: str):
    """(float32 [N, D] descriptors, bool [N] found) of a set's images; rows not found are
    zeros."""
    from .teacher import CacheError, DescriptorCache

    if imageset.sources is None:
        raise InputError(f"{what}: its images were not read from files, so a teacher cache "
                         "cannot describe them")
    try:
        cache = DescriptorCache(cache_dir)
    except CacheError as e:
        raise InputError(str(e)) from None
    return cache.lookup_files(list(imageset.sources))


def sequences_of(imageset):
    """The recording (CK+ sequence) of each image as 'subject/sequence', or None when the
    file names do not say (e.g. FER+, whose images have no person labels)."""
    if imageset.sources is None:
        return None
    found = [CKPLUS_FILE_NAME.match(os.path.basename(p)) for p in imageset.sources]
    if not all(found):
        return None
    return np.array([f"{m.group(1)}/{m.group(2)}" for m in found])


def other_recordings_mean(descriptors, found, subjects, sequences):
    """Per image, the mean descriptor of the same person's images from other sequences:
    who the person is, without this recording's expression. (float32 [N, D], bool [N]:
    False where the person has no other sequence with a descriptor; those rows are 0)."""
    out = np.zeros_like(descriptors)
    has = np.zeros(len(descriptors), bool)
    for person in np.unique(subjects):
        mine = np.flatnonzero(subjects == person)
        for seq in np.unique(sequences[mine]):
            rows = mine[sequences[mine] == seq]
            others = mine[(sequences[mine] != seq) & found[mine]]
            if len(others):
                out[rows] = descriptors[others].mean(0)
                has[rows] = True
    return out, has


def with_teacher_side(imageset, cache_dir, other_recordings=False):
    """(the set with its teacher descriptors as ``side``, images without one). With
    ``other_recordings``: the person's mean descriptor from other sequences instead, or
    None when the set has no sequences."""
    vectors, found = teacher_descriptors(imageset, cache_dir, imageset.name)
    if other_recordings:
        sequences = sequences_of(imageset)
        if sequences is None:
            return None, 0
        vectors, found = other_recordings_mean(vectors, found, imageset.subjects, sequences)
    return imageset.with_side(vectors), int((~found).sum())
