"""k-fold cross-validation that cannot leak people.

Subject folds (the default): every person's images go to exactly one fold; folds are
balanced by class as far as whole people allow (a greedy assignment, rarest classes first).
For fold i, the test split is fold i, the validation split is fold (i + 1) mod k (used to
choose the epoch, never trained on), and training uses the remaining k - 2 folds, so no
person is in two of train / validation / test.

Image folds (``kind="image"``) reproduce the leaky protocol where the same person's frames
can be on both sides; they exist to measure the leak and are labelled as such.

The fold list (who is where) is written out and hashed into the results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np


@dataclass
class Fold:
    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _assign_subjects(subjects, labels, k, rng):
    people = np.unique(subjects)
    num_classes = int(labels.max()) + 1
    counts = np.zeros((len(people), num_classes))
    where = {p: i for i, p in enumerate(people)}
    np.add.at(counts, ([where[s] for s in subjects], labels), 1)
    target = counts.sum(0) / k
    # People with the rarest classes first (they are the hardest to balance), ties random.
    rarity = (counts / np.maximum(counts.sum(0), 1)).max(1)
    order = np.lexsort((rng.random(len(people)), -rarity))
    fold_counts = np.zeros((k, num_classes))
    fold_of = {}
    for i in order:
        scale = np.maximum(target, 1)
        before = (((fold_counts - target) / scale) ** 2).sum(1)
        after = (((fold_counts + counts[i] - target) / scale) ** 2).sum(1)
        cost = after - before + 1e-9 * fold_counts.sum(1)  # ties: the smaller fold
        f = int(np.argmin(cost))
        fold_counts[f] += counts[i]
        fold_of[people[i]] = f
    return np.array([fold_of[s] for s in subjects])


def make_folds(subjects, labels, k=10, seed=0, kind="subject"):
    """List of k Folds over the images (index arrays into the set)."""
    subjects = np.asarray(subjects)
    labels = np.asarray(labels)
    if k < 3:
        raise ValueError(f"folds: k must be >= 3 (test, validation and training folds), got {k}")
    rng = np.random.default_rng(seed)
    if kind == "subject":
        if len(np.unique(subjects)) < k:
            raise ValueError(f"folds: {len(np.unique(subjects))} people cannot fill {k} "
                             "subject-independent folds")
        fold_of = _assign_subjects(subjects, labels, k, rng)
    elif kind == "image":
        fold_of = np.empty(len(labels), np.int64)
        for c in np.unique(labels):  # stratified: each class dealt round-robin
            idx = rng.permutation(np.flatnonzero(labels == c))
            fold_of[idx] = (np.arange(len(idx)) + rng.integers(k)) % k
    else:
        raise ValueError(f"folds: unknown kind {kind!r} (subject or image)")
    folds = []
    for i in range(k):
        v = (i + 1) % k
        folds.append(Fold(i, np.flatnonzero((fold_of != i) & (fold_of != v)),
                          np.flatnonzero(fold_of == v), np.flatnonzero(fold_of == i)))
    return folds


def fold_list(folds, subjects, names=None):
    """JSON-able description: per fold, the people (and with ``names``, the images) of its
    test and validation splits."""
    subjects = np.asarray(subjects)
    out = []
    for f in folds:
        entry = {"fold": f.index, "test_people": sorted(set(subjects[f.test].tolist())),
                 "val_people": sorted(set(subjects[f.val].tolist())),
                 "sizes": {"train": len(f.train), "val": len(f.val), "test": len(f.test)}}
        if names is not None:
            entry["test_images"] = [names[i] for i in f.test]
        out.append(entry)
    return out


def hash_of(description) -> str:
    blob = json.dumps(description, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()
