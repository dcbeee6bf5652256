"""Face verification with the LFW protocol ("View 2": 10-fold cross-validation).

A verification test asks, for a pair of face images, "same person or not?". LFW's
``pairs.txt`` lists the pairs: a header ``<folds> <pairs per fold>`` (or one number for a
single set), then per fold that many same-person lines ``name n1 n2`` followed by that
many different-person lines ``name1 n1 name2 n2`` (n = the 1-based image number,
``name/name_0003.jpg`` is image 3 of ``name``).

Here:

- ``read_pairs(path)`` reads such a file (names and numbers; ``Pairs.resolve(set)`` turns
  them into image indices of a folder-per-person ImageSet, image n of a person being its
  n-th image in file-name order, which is LFW's numbering);
- ``generate_pairs(identity_set, ...)`` makes LFW-like pairs for any folder-per-person set
  (LFW's images are not needed): per fold ``per_fold`` same-person and ``per_fold``
  different-person pairs, no repeated pair, and, as in LFW, every person in one fold only;
  ``write_pairs`` saves them in pairs.txt format;
- ``verification_accuracy(features, pairs)`` scores each pair by the cosine similarity of
  the two feature vectors and, for each fold in turn, picks the threshold that classifies
  the other folds best and measures accuracy on the held-out fold: mean and standard
  deviation (numpy's, ddof 0) of the fold accuracies, in %.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Pairs", "generate_pairs", "read_pairs", "verification_accuracy", "write_pairs"]


@dataclass
class Pairs:
    """Face pairs with their fold and ground truth.

    Attributes:
        same: bool [P], True for a same-person pair.
        fold: int64 [P], the fold (0-based) of each pair.
        first, second: int64 [P] image indices into an ImageSet, or None while the pairs
            are only named (as read from a file; see ``resolve``).
        names: [(name1, n1, name2, n2)] per pair (n 1-based), or None.
    """

    same: np.ndarray
    fold: np.ndarray
    first: np.ndarray | None = None
    second: np.ndarray | None = None
    names: list = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(len(self.same))

    @property
    def num_folds(self) -> int:
        return int(self.fold.max()) + 1 if len(self.fold) else 0

    def resolve(self, identity_set) -> "Pairs":
        """Pairs with ``first``/``second`` indexing ``identity_set`` (a folder-per-person
        ImageSet: ``classes`` are the people, named '<root>/<person>' or '<person>')."""
        if self.names is None:
            raise ValueError("pairs: no names to resolve (already index pairs)")
        people = {}
        for c, name in enumerate(identity_set.classes):
            for key in {name, name.rsplit("/", 1)[-1]}:
                people.setdefault(key, []).append(c)
        labels = np.asarray(identity_set.labels)
        members = {}

        def index(name, n, line):
            cs = people.get(name)
            if not cs:
                raise ValueError(f"pair {line}: person {name!r} is not in the identity set")
            if len(cs) > 1:
                raise ValueError(f"pair {line}: person {name!r} is ambiguous ("
                                 + ", ".join(identity_set.classes[c] for c in cs) + ")")
            c = cs[0]
            if c not in members:
                members[c] = np.flatnonzero(labels == c)
            if not 1 <= n <= len(members[c]):
                raise ValueError(f"pair {line}: {name!r} has {len(members[c])} images, no "
                                 f"image {n}")
            return int(members[c][n - 1])

        first = [index(a, na, i + 1) for i, (a, na, _, _) in enumerate(self.names)]
        second = [index(b, nb, i + 1) for i, (_, _, b, nb) in enumerate(self.names)]
        return Pairs(self.same.copy(), self.fold.copy(), np.array(first, np.int64),
                     np.array(second, np.int64), list(self.names))


def read_pairs(path) -> Pairs:
    """An LFW ``pairs.txt`` (or ``pairsDevTrain.txt``-style single set) as named Pairs;
    errors name the file and line."""
    path = os.fspath(path)
    with open(path) as f:
        lines = [(i, ln.split()) for i, ln in enumerate(f, 1) if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty pairs file")
    _, header = lines[0]
    try:
        counts = [int(v) for v in header]
    except ValueError:
        raise ValueError(f"{path}:1: expected a header '<folds> <pairs per fold>', got "
                         f"{' '.join(header)!r}") from None
    if len(counts) == 1:
        folds, per_fold = 1, counts[0]
    elif len(counts) == 2:
        folds, per_fold = counts
    else:
        raise ValueError(f"{path}:1: expected a header '<folds> <pairs per fold>', got "
                         f"{' '.join(header)!r}")
    if folds < 1 or per_fold < 1:
        raise ValueError(f"{path}:1: folds and pairs per fold must be positive")
    body = lines[1:]
    if len(body) != 2 * folds * per_fold:
        raise ValueError(f"{path}: the header promises {folds} x (2 x {per_fold}) = "
                         f"{2 * folds * per_fold} pairs, the file has {len(body)} lines")
    names, same, fold = [], [], []
    for k, (line, fields) in enumerate(body):
        want_same = (k % (2 * per_fold)) < per_fold
        where = f"{path}:{line}"
        try:
            if want_same:
                if len(fields) != 3:
                    raise ValueError
                a, na, nb = fields[0], int(fields[1]), int(fields[2])
                b = a
            else:
                if len(fields) != 4:
                    raise ValueError
                a, na, b, nb = fields[0], int(fields[1]), fields[2], int(fields[3])
        except ValueError:
            kind = "'name n1 n2' (same person)" if want_same else \
                "'name1 n1 name2 n2' (different people)"
            raise ValueError(f"{where}: expected {kind}, got {' '.join(fields)!r}") from None
        if not want_same and a == b:
            raise ValueError(f"{where}: a different-person pair names {a!r} twice")
        names.append((a, na, b, nb))
        same.append(want_same)
        fold.append(k // (2 * per_fold))
    return Pairs(np.array(same, bool), np.array(fold, np.int64), names=names)


def write_pairs(pairs: Pairs, path, identity_set=None) -> None:
    """Save pairs in LFW pairs.txt format (index pairs need ``identity_set`` for the names;
    people are written by their class name, image numbers are 1-based per person)."""
    if pairs.names is not None:
        names = pairs.names
    else:
        if identity_set is None:
            raise ValueError("write_pairs: index pairs need identity_set to be named")
        labels = np.asarray(identity_set.labels)
        rank = np.empty(len(labels), np.int64)
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            rank[idx] = np.arange(1, len(idx) + 1)
        cls = identity_set.classes
        names = [(cls[labels[i]], int(rank[i]), cls[labels[j]], int(rank[j]))
                 for i, j in zip(pairs.first, pairs.second)]
    for a, _, b, _ in names:
        if any(ch.isspace() for ch in a + b):
            raise ValueError(f"write_pairs: person name with white space: {a!r} / {b!r}")
    k = pairs.num_folds
    per = [(pairs.fold == f) & pairs.same for f in range(k)]
    per_fold = int(per[0].sum()) if k else 0
    for f in range(k):
        if per[f].sum() != per_fold or ((pairs.fold == f) & ~pairs.same).sum() != per_fold:
            raise ValueError("write_pairs: pairs.txt needs the same number of same and "
                             "different pairs in every fold")
    lines = [f"{k}\t{per_fold}"]
    for f in range(k):
        for want in (True, False):
            for i in np.flatnonzero((pairs.fold == f) & (pairs.same == want)):
                a, na, b, nb = names[i]
                lines.append(f"{a}\t{na}\t{nb}" if want else f"{a}\t{na}\t{b}\t{nb}")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def generate_pairs(identity_set, folds=10, per_fold=300, seed=0, groups=None) -> Pairs:
    """LFW-like index pairs for a folder-per-person ImageSet.

    People are dealt to ``folds`` folds (each person in one fold, as in LFW); each fold gets
    ``per_fold`` distinct same-person pairs and ``per_fold`` distinct different-person pairs
    drawn uniformly from its people. ValueError when a fold cannot supply them (the message
    gives the largest feasible ``per_fold``).

    groups: optional [N] labels (e.g. CK+ sequences, whose frames are near copies): a
    same-person pair then always joins two different groups.
    """
    labels = np.asarray(identity_set.labels)
    if labels is None or len(labels) == 0:
        raise ValueError("generate_pairs: the identity set has no labelled images")
    if folds < 2 or per_fold < 1:
        raise ValueError(f"generate_pairs: need folds >= 2 and per_fold >= 1, got {folds}, "
                         f"{per_fold}")
    rng = np.random.default_rng(seed)
    people = np.unique(labels)
    if len(people) < 2 * folds:
        raise ValueError(f"generate_pairs: {len(people)} people cannot fill {folds} folds "
                         "(at least 2 per fold for different-person pairs)")
    images = {int(c): np.flatnonzero(labels == c) for c in people}
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    if len(groups) != len(labels):
        raise ValueError(f"generate_pairs: {len(groups)} groups for {len(labels)} images")
    # Same-person pairs a person offers: all pairs of their images but those in one group.
    same_pairs = {c: (len(ix) * (len(ix) - 1)
                      - sum(n * (n - 1) for n in np.unique(groups[ix], return_counts=True)[1]))
                  // 2 for c, ix in images.items()}
    # Deal people so that folds have similar numbers of same-person pairs: people with the
    # most images first, each to the fold with the fewest possible pairs so far, except
    # that every fold gets two people before any gets a third (a one-person fold has no
    # different-person pairs, whatever its same-person capacity).
    order = sorted(people.tolist(), key=lambda c: (-len(images[c]), rng.random()))
    fold_people = [[] for _ in range(folds)]
    capacity = np.zeros(folds)
    for c in order:
        f = min(range(folds), key=lambda k: (len(fold_people[k]) >= 2, capacity[k],
                                             len(fold_people[k])))
        fold_people[f].append(c)
        capacity[f] += same_pairs[c]
    first, second, same, fold = [], [], [], []
    limits = []
    for f, members in enumerate(fold_people):
        sizes = np.array([len(images[c]) for c in members])
        n_same = sum(same_pairs[c] for c in members)
        n_diff = int((sizes.sum() ** 2 - (sizes ** 2).sum()) // 2)
        limits.append(min(n_same, n_diff))
    if min(limits) < per_fold:
        raise ValueError(f"generate_pairs: a fold of this set holds at most {min(limits)} "
                         f"distinct same-person pairs with people kept to one fold; "
                         f"per_fold={per_fold} is too many (use per_fold <= {min(limits)} or "
                         "fewer folds)")
    for f, members in enumerate(fold_people):
        # Same-person pairs: a person drawn in proportion to their number of pairs, then
        # two of their images; repeats (and pairs within one group) are rejected.
        weights = np.array([same_pairs[c] for c in members], np.float64)
        weights = weights / weights.sum()
        chosen = set()
        while len(chosen) < per_fold:
            c = members[int(rng.choice(len(members), p=weights))]
            i, j = sorted(rng.choice(images[c], 2, replace=False).tolist())
            if groups[i] != groups[j]:
                chosen.add((i, j))
        for i, j in sorted(chosen):
            first.append(i), second.append(j), same.append(True), fold.append(f)
        pool = np.concatenate([images[c] for c in members])
        owner = labels[pool]
        chosen = set()
        while len(chosen) < per_fold:
            a, b = rng.choice(len(pool), 2, replace=False)
            if owner[a] == owner[b]:
                continue
            chosen.add(tuple(sorted((int(pool[a]), int(pool[b])))))
        for i, j in sorted(chosen):
            first.append(i), second.append(j), same.append(False), fold.append(f)
    return Pairs(np.array(same, bool), np.array(fold, np.int64), np.array(first, np.int64),
                 np.array(second, np.int64))


def _best_threshold(scores, same):
    """The threshold t maximising the accuracy of 'same iff score > t' (midpoints between
    sorted scores; the lowest of equally good ones)."""
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    # Threshold below position k (k = 0..n): everything from k on is called 'same'.
    # correct(k) = (different pairs below k) + (same pairs from k on).
    diff_below = np.concatenate([[0], np.cumsum(~y)])
    same_from = np.concatenate([[0], np.cumsum(y)])
    correct = diff_below + (same_from[-1] - same_from)
    # Only cut between different score values.
    valid = np.ones(len(s) + 1, bool)
    valid[1:-1] = s[1:] > s[:-1]
    k = int(np.argmax(np.where(valid, correct, -1)))
    if k == 0:
        return s[0] - 1.0
    if k == len(s):
        return s[-1] + 1.0
    return (s[k - 1] + s[k]) / 2.0


def verification_accuracy(features, pairs: Pairs):
    """(mean accuracy %, std %) over the folds of ``pairs``: cosine similarity of the
    features of the two images, threshold chosen on the other folds for each test fold.

    features: [N, D] array (one row per image of the set the pairs index).
    """
    if pairs.first is None:
        raise ValueError("verification_accuracy: the pairs are only named; call "
                         "pairs.resolve(identity_set) first")
    x = np.asarray(features, np.float64)
    if x.ndim != 2:
        raise ValueError(f"features: expected [N, D], got shape {x.shape}")
    top = max(int(pairs.first.max()), int(pairs.second.max()))
    if top >= len(x):
        raise ValueError(f"features: {len(x)} rows, but the pairs use image {top}")
    if pairs.num_folds < 2:
        raise ValueError("verification_accuracy: needs at least 2 folds of pairs")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    scores = np.einsum("ij,ij->i", x[pairs.first], x[pairs.second])
    accs = []
    for f in range(pairs.num_folds):
        test = pairs.fold == f
        if not test.any():
            continue
        t = _best_threshold(scores[~test], pairs.same[~test])
        accs.append(np.mean((scores[test] > t) == pairs.same[test]) * 100.0)
    accs = np.array(accs)
    return float(accs.mean()), float(accs.std())
