"""The built-in synthetic face generator (tfe.data.synthetic): determinism, splits, the
resting-look property that motivates identity features, and basic image sanity.

Pure NumPy; no native module needed.
"""

import numpy as np
import pytest

from tfe.data import CLASSES, RESTING_LOOKS, SyntheticFaces, default_splits
from tfe.data.synthetic import ACTIONS


def test_classes_are_the_papers_eight_in_order():
    assert CLASSES == (
        "neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"
    )


def test_same_seed_same_images_other_seed_different():
    a = SyntheticFaces(seed=5).expression_set(3, 1)
    b = SyntheticFaces(seed=5).expression_set(3, 1)
    c = SyntheticFaces(seed=6).expression_set(3, 1)
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_person_is_the_same_whatever_else_is_generated():
    """Person k's images depend on (seed, k, images per person) only: not on the other
    people, their number, the chunking or the render order."""
    big = SyntheticFaces(seed=3).expression_set(12, 2, first_person=0)
    alone = SyntheticFaces(seed=3, chunk=7).expression_set(2, 2, first_person=5)
    sel = np.isin(big.subjects, alone.subjects)
    assert sel.sum() == len(alone)
    assert np.array_equal(big.images[sel], alone.images)

    ids_big = SyntheticFaces(seed=3).identity_set(10, 4, first_person=0)
    ids_one = SyntheticFaces(seed=3).identity_set(1, 4, first_person=6)
    assert np.array_equal(ids_big.images[ids_big.subjects == ids_one.subjects[0]], ids_one.images)

    f, g = SyntheticFaces(seed=3), SyntheticFaces(seed=3)
    g.identity(40)  # look-up order must not matter
    for k in (0, 7, 40):
        p, q = f.identity(k), g.identity(k)
        assert p.geometry == q.geometry and p.resting == q.resting
        assert np.array_equal(p.neutral_actions, q.neutral_actions)


def test_default_splits_have_disjoint_people_and_balanced_classes():
    splits = default_splits(seed=1, train_people=5, val_people=3, test_people=3,
                            per_person_per_class=2, identity_people=4, identity_per_person=3)
    assert set(splits) == {"train", "val", "test", "identity"}
    people = {name: set(s.subjects) for name, s in splits.items()}
    names = list(people)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not people[a] & people[b], f"{a} and {b} share people"
    assert [len(people[n]) for n in ("train", "val", "test", "identity")] == [5, 3, 3, 4]

    for name in ("train", "val", "test"):
        s = splits[name]
        assert s.classes == list(CLASSES)
        assert np.all(s.class_counts() == len(people[name]) * 2)
        # Every person shows every class equally often.
        for person in people[name]:
            assert np.all(np.bincount(s.labels[s.subjects == person], minlength=8) == 2)

    ident = splits["identity"]
    assert len(ident) == 12 and ident.classes == sorted(people["identity"])
    assert np.array_equal(np.asarray(ident.classes)[ident.labels], ident.subjects)
    for s in splits.values():
        assert s.synthetic and s.name.startswith("synthetic")
        assert s.images.dtype == np.uint8 and s.images.shape[1:] == (48, 48)

    # A run that shares another's identity set renders none; the rest is the same.
    alone = default_splits(seed=1, train_people=5, val_people=3, test_people=3,
                           per_person_per_class=2, identity_people=4, identity_per_person=3,
                           identity=False)
    assert set(alone) == {"train", "val", "test"}
    assert np.array_equal(alone["test"].images, splits["test"].images)


def test_default_sizes_fit_a_few_cpu_minutes():
    """The documented defaults (checked without rendering them)."""
    import inspect

    sig = inspect.signature(SyntheticFaces.default_splits).parameters
    train = sig["train_people"].default * sig["per_person_per_class"].default * 8
    val = sig["val_people"].default * sig["per_person_per_class"].default * 8
    test = sig["test_people"].default * sig["per_person_per_class"].default * 8
    ident = sig["identity_people"].default * sig["identity_per_person"].default
    assert 1000 <= train <= 3000 and 400 <= val <= 1000 and 600 <= test <= 1500
    assert 2000 <= ident <= 5000


def test_images_vary_and_use_the_range():
    s = SyntheticFaces(seed=2).expression_set(4, 2)
    x = s.images.astype(np.float64)
    per_image_std = x.reshape(len(s), -1).std(axis=1)
    assert np.all(per_image_std > 10), "an image is (nearly) constant"
    assert x.min() < 40 and x.max() > 200
    # No two images identical, and the set is not dominated by one gray level.
    flat = s.images.reshape(len(s), -1)
    assert len({row.tobytes() for row in flat}) == len(s)
    assert 60 < x.mean() < 200


def test_every_expression_changes_the_face_even_when_weak():
    f = SyntheticFaces(seed=0, jitter=0.0)
    grid = f.expression_grid(range(12), intensity=0.5).astype(np.float64)  # [P, 8, H, W]
    # Pixels that change by more than 8 gray levels from the person's own neutral, per class.
    visible = (np.abs(grid[:, 1:] - grid[:, :1]) > 8).sum(axis=(2, 3))  # [P, 7]
    assert np.all(visible >= 5), visible.min(axis=0)
    assert np.all(np.median(visible, axis=0) >= 10), np.median(visible, axis=0)


def test_resting_looks_are_common_and_visible():
    f = SyntheticFaces(seed=0)
    looks = [f.identity(k).resting for k in range(400)]
    assert set(looks) <= set(RESTING_LOOKS)
    frac = np.mean([look != "none" for look in looks])
    assert 0.65 < frac < 0.85, frac


@pytest.mark.parametrize("look,cls", [("sad", "sadness"), ("angry", "anger")])
def test_resting_look_shifts_the_neutral_face_towards_its_expression(look, cls):
    """The paper's Fig. 1 premise: a person with a sad (angry) resting look has a neutral
    face that differs from their own face without it in the direction in which sadness
    (anger) changes faces. Proxy: the correlation, over pixels, of the group's mean
    (neutral - same face without action offsets) with (mean full expression - mean
    neutral) of people with no resting look."""
    f = SyntheticFaces(seed=0, jitter=0.0)
    people = np.arange(300)
    looks = np.array([f.identity(k).resting for k in people])
    plain = people[looks == "none"][:40]
    ci = CLASSES.index(cls)
    expr = f.expression_grid(plain, classes=[0, ci]).astype(np.float64)
    direction = (expr[:, 1] - expr[:, 0]).mean(axis=0).ravel()
    other = CLASSES.index("happy")
    expr_other = f.expression_grid(plain, classes=[0, other]).astype(np.float64)
    other_direction = (expr_other[:, 1] - expr_other[:, 0]).mean(axis=0).ravel()

    def rest_shift(ks):
        # Each person's neutral minus the same face with no action offset at all: the
        # resting look alone (the face build that comes with it cancels out).
        zero = np.zeros(len(ACTIONS), np.float32)
        draws = [f._params(k, np.stack([f.identity(k).neutral_actions, zero]),
                           f._clean_jitter(2)) for k in ks]
        pairs = f._render_draws(draws, noise=False).astype(np.float64).reshape(len(ks), 2, -1)
        return (pairs[:, 0] - pairs[:, 1]).mean(axis=0)

    shift = rest_shift(people[looks == look])
    control = rest_shift(people[looks == "none"])
    r = np.corrcoef(shift, direction)[0, 1]
    assert r > 0.45, r
    assert r > np.corrcoef(shift, other_direction)[0, 1] + 0.3
    assert np.corrcoef(control, direction)[0, 1] < 0.1


def test_face_build_tells_the_resting_look():
    """Who-looks-how is in the person's build: from the build traits alone (no image), a
    nearest-centroid rule fitted on 300 people names the resting look of 300 others far
    above the majority look (measured 98 % against 26 %)."""
    from tfe.data.synthetic import _GEOMETRY, _GEOMETRY_NAMES, _RESTING_BUILDS

    f = SyntheticFaces(seed=3)
    traits = sorted({t for build in _RESTING_BUILDS.values() for t in build})
    lo = {g[0]: g[1] for g in _GEOMETRY}
    span = {g[0]: g[2] - g[1] for g in _GEOMETRY}

    def people(ks):
        ps = [f.identity(k) for k in ks]
        x = np.array([[(p.geometry[t] - lo[t]) / span[t] for t in traits] for p in ps])
        return x, np.array([RESTING_LOOKS.index(p.resting) for p in ps])

    assert set(traits) <= set(_GEOMETRY_NAMES)
    x, y = people(range(300))
    xt, yt = people(range(300, 600))
    centroids = np.stack([x[y == c].mean(axis=0) for c in range(len(RESTING_LOOKS))])
    pred = np.argmin(((xt[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    majority = np.bincount(yt).max() / len(yt)
    assert (pred == yt).mean() > majority + 0.4, ((pred == yt).mean(), majority)


def test_identity_is_predictable_from_neutral_faces():
    """Neutral faces under pose and lighting jitter still tell people apart: the
    nearest person-mean (leave-one-out, standardised pixels) names 30 people at about
    16 times chance (measured 53 %; chance 1/30)."""
    s = SyntheticFaces(seed=6, size=32, jitter=0.5).expression_set(30, 6)
    keep = s.labels == 0
    x = s.images[keep].reshape(keep.sum(), -1).astype(np.float64)
    who = s.subjects[keep]
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1.0)
    people = np.unique(who)
    right = 0
    for i in range(len(x)):
        others = np.arange(len(x)) != i
        means = np.stack([x[others & (who == p)].mean(axis=0) for p in people])
        right += people[np.argmin(((means - x[i]) ** 2).sum(axis=1))] == who[i]
    assert right / len(x) > 0.3, right / len(x)


def test_jitter_zero_is_clean_and_identity_set_mixes_expressions():
    clean = SyntheticFaces(seed=4, jitter=0.0).identity_set(2, 6)
    a = clean.images[clean.labels == 0].astype(np.float64)
    # Same person, same pose: images differ only through expression (small parts of the face).
    assert np.abs(a - a[:1]).mean() < 8
    noisy = SyntheticFaces(seed=4).identity_set(2, 6)
    b = noisy.images[noisy.labels == 0].astype(np.float64)
    assert np.abs(b - b[:1]).mean() > np.abs(a - a[:1]).mean()


def test_bad_arguments():
    with pytest.raises(ValueError, match="seed"):
        SyntheticFaces(seed=-1)
    with pytest.raises(ValueError, match="size"):
        SyntheticFaces(size=8)
