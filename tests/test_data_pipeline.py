"""tfe.data pipeline: ImageSet validation, Normalizer, Augmenter, resize_gray, BatchLoader.

Pure NumPy; no native module needed.
"""

import json
import threading

import numpy as np
import pytest

from tfe.data import Augmenter, BatchLoader, ImageSet, Normalizer, SyntheticFaces, resize_gray


def _set(n=10, h=8, w=8, k=3, seed=0, **kw):
    r = np.random.default_rng(seed)
    args = dict(
        images=r.integers(0, 256, (n, h, w), dtype=np.uint8),
        labels=r.integers(0, k, n),
        classes=[f"c{i}" for i in range(k)],
        subjects=np.array([f"p{i % 4}" for i in range(n)]),
        name="toy",
    )
    args.update(kw)
    return ImageSet(**args)


def _indexed_set(n, h=6, w=6):
    """Images that carry their own index in pixels (0, 0) and (0, 1)."""
    images = np.zeros((n, h, w), np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    images[:, 0, 1] = np.arange(n) // 256
    return ImageSet(images, np.arange(n) % 3, ["a", "b", "c"], np.arange(n).astype(str), "indexed")


def _decode(x):
    return (x[:, 0, 0, 0] + 256 * x[:, 0, 0, 1]).astype(np.int64)


IDENTITY_NORM = Normalizer(np.zeros((6, 6)), np.ones((6, 6)))


# ---------------------------------------------------------------- ImageSet


@pytest.mark.parametrize(
    "field,kw",
    [
        ("images", dict(images=np.zeros((10, 8, 8), np.float32))),
        ("images", dict(images=np.zeros((10, 64), np.uint8))),
        ("labels", dict(labels=np.full(10, 3))),
        ("labels", dict(labels=np.full(10, -1))),
        ("labels", dict(labels=np.zeros(9, int))),
        ("labels", dict(labels=np.zeros(10, np.float32))),
        ("subjects", dict(subjects=np.array(["a"] * 9))),
        ("soft_labels", dict(soft_labels=np.ones((10, 2), np.float32))),
        ("soft_labels", dict(soft_labels=-np.ones((10, 3), np.float32))),
    ],
)
def test_imageset_validation_names_the_field(field, kw):
    with pytest.raises(ValueError, match=field):
        _set(**kw)


def test_imageset_subset_counts_and_unlabeled():
    s = _set(n=12)
    assert len(s) == 12 and s.image_size == (8, 8) and s.labels.dtype == np.int64
    assert s.class_counts().sum() == 12 and s.class_counts().dtype == np.int64
    sub = s.subset(s.labels == 1)
    assert len(sub) == s.class_counts()[1] and np.all(sub.labels == 1)
    assert sub.classes == s.classes and sub.name == s.name
    sub2 = s.subset([3, 1])
    assert np.array_equal(sub2.images, s.images[[3, 1]])
    assert np.array_equal(sub2.subjects, s.subjects[[3, 1]])

    soft = np.full((12, 3), 1 / 3, np.float32)
    soft[:, 2] += 0.1
    u = _set(n=12, labels=None, soft_labels=soft)
    assert list(u.class_counts()) == [0, 0, 12]
    with pytest.raises(ValueError, match="labels"):
        _set(labels=None).class_counts()


# ---------------------------------------------------------------- Normalizer


def test_normalizer_is_fitted_on_training_images_only():
    splits = SyntheticFaces(seed=0).default_splits(train_people=3, val_people=2, test_people=2,
                                                   per_person_per_class=1, identity_people=1,
                                                   identity_per_person=1)
    norm = Normalizer.fit(splits["train"].images)
    train = splits["train"].images.astype(np.float64)
    np.testing.assert_allclose(norm.mean, train.mean(axis=0), rtol=0, atol=1e-3)
    np.testing.assert_allclose(norm.std, np.maximum(train.std(axis=0), 1.0), rtol=1e-5, atol=1e-3)
    everything = np.concatenate([splits[k].images for k in ("train", "val", "test")])
    assert not np.allclose(Normalizer.fit(everything).mean, norm.mean)

    x = norm.apply(splits["train"].images)
    assert x.dtype == np.float32 and x.shape == (len(train), 1, 48, 48) and x.flags.c_contiguous
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-3)


def test_normalizer_floors_std_and_round_trips_exactly():
    images = np.random.default_rng(1).integers(0, 256, (20, 5, 7), dtype=np.uint8)
    images[:, 0, 0] = 17  # a constant pixel
    norm = Normalizer.fit(images, min_std=0.5)
    assert norm.std[0, 0] == np.float32(0.5)
    assert np.all(np.isfinite(norm.apply(images)))

    back = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert np.array_equal(back.mean, norm.mean) and np.array_equal(back.std, norm.std)
    assert np.array_equal(back.apply(images), norm.apply(images))
    again = Normalizer.from_arrays(*norm.to_arrays())
    assert np.array_equal(again.apply(images), norm.apply(images))
    assert norm.apply(images[0]).shape == (1, 1, 5, 7)
    with pytest.raises(ValueError, match="images"):
        norm.apply(np.zeros((2, 5, 6), np.uint8))
    with pytest.raises(ValueError, match="std"):
        Normalizer(np.zeros((2, 2)), np.zeros((2, 2)))


# ---------------------------------------------------------------- Augmenter


def test_augmenter_is_reproducible_from_seed_epoch_batch():
    x = SyntheticFaces(seed=0).expression_set(2, 2).images
    aug = Augmenter(seed=7)
    a = aug(x, epoch=3, batch_index=5)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert np.array_equal(a, Augmenter(seed=7)(x, epoch=3, batch_index=5))
    assert not np.array_equal(a, aug(x, epoch=3, batch_index=6))
    assert not np.array_equal(a, aug(x, epoch=4, batch_index=5))
    assert not np.array_equal(a, Augmenter(seed=8)(x, epoch=3, batch_index=5))
    assert a.min() >= 0 and a.max() <= 255


def test_flip_is_exact_and_its_own_inverse():
    x = np.random.default_rng(0).integers(0, 256, (16, 9, 12), dtype=np.uint8)
    ones = np.ones(16, bool)
    once = Augmenter.transform(x, ones)
    assert np.array_equal(once, x[:, :, ::-1])
    assert np.array_equal(Augmenter.transform(once, ones), x)
    assert np.array_equal(Augmenter.transform(x, ~ones), x)  # nothing to do: identity

    flip_only = Augmenter(flip=True, max_shift=0, max_rotation=0, seed=1)
    flipped, _, _ = flip_only.params(16, 0, 0)
    y = flip_only(x, 0, 0)
    assert 0 < flipped.sum() < 16
    assert np.array_equal(y[flipped], x[flipped][:, :, ::-1])
    assert np.array_equal(y[~flipped], x[~flipped])


def test_shift_and_rotation_geometry():
    x = np.random.default_rng(2).integers(0, 256, (3, 10, 10), dtype=np.uint8)
    no = np.zeros(3, bool)
    right_down = Augmenter.transform(x, no, shift=np.tile([2.0, 1.0], (3, 1)))
    assert np.array_equal(right_down[:, 1:, 2:], x[:, :-1, :-2])  # content moves right/down
    assert np.array_equal(right_down[:, 1:, 0], x[:, :-1, 0])  # edge repeated
    turned = Augmenter.transform(x, no, angle=np.full(3, 90.0))
    np.testing.assert_allclose(turned, np.rot90(x, axes=(1, 2)), atol=1e-3)


def test_resize_gray():
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0] = 200
    out = resize_gray(rgb, 48)
    assert out.shape == (48, 48) and out.dtype == np.uint8
    assert np.all(out == round(0.299 * 200))
    blocks = np.kron(np.arange(16, dtype=np.uint8).reshape(4, 4) * 10, np.ones((3, 3), np.uint8))
    np.testing.assert_array_equal(resize_gray(blocks, 4), np.arange(16).reshape(4, 4) * 10)
    small = np.array([[0, 100], [100, 200]], np.uint8)
    up = resize_gray(small, 4)
    assert up[0, 0] == 0 and up[-1, -1] == 200 and up[0, 1] == 25  # bilinear, edge clamped
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 255
    assert np.all(resize_gray(wide, 5) == 255)  # centre crop keeps the middle square
    assert resize_gray(wide, 5, keep_aspect=False).mean() < 255


# ---------------------------------------------------------------- BatchLoader


def _loader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tfe-batches")]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_loader_covers_every_sample_once_per_epoch(prefetch):
    s = _indexed_set(300)
    ld = BatchLoader(s, 32, IDENTITY_NORM, shuffle=True, seed=4, prefetch=prefetch)
    assert len(ld) == 10
    orders = []
    for _ in range(2):
        seen, sizes = [], []
        for x, y in ld:
            assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1] == 1
            assert x.flags.c_contiguous
            assert y.dtype == np.int64
            idx = _decode(x)
            assert np.array_equal(y, idx % 3)  # labels travel with their images
            seen.append(idx)
            sizes.append(len(idx))
        seen = np.concatenate(seen)
        assert np.array_equal(np.sort(seen), np.arange(300)) and sizes[-1] == 300 - 9 * 32
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1])  # a new shuffle each epoch
    assert ld.epoch == 2
    ld.set_epoch(1)
    assert np.array_equal(np.concatenate([_decode(x) for x, _ in ld]), orders[1])
    assert not _loader_threads()


def test_loader_options_and_augmented_batches_are_reproducible():
    s = _indexed_set(100)
    ld = BatchLoader(s, 32, IDENTITY_NORM, shuffle=False, drop_last=True)
    batches = list(ld)
    assert len(ld) == len(batches) == 3
    assert np.array_equal(np.concatenate([_decode(x) for x, _ in batches]), np.arange(96))

    faces = SyntheticFaces(seed=0).expression_set(2, 2)
    norm = Normalizer.fit(faces.images)
    a = BatchLoader(faces, 8, norm, Augmenter(seed=3), seed=1, prefetch=2)
    b = BatchLoader(faces, 8, norm, Augmenter(seed=3), seed=1, prefetch=0)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)

    soft = np.random.default_rng(0).dirichlet(np.ones(3), 100).astype(np.float32)
    ss = ImageSet(s.images, None, s.classes, s.subjects, "soft", soft_labels=soft)
    x, y = next(iter(BatchLoader(ss, 10, IDENTITY_NORM, shuffle=False)))
    assert y.dtype == np.float32 and np.array_equal(y, soft[:10])
    _, y = next(iter(BatchLoader(s, 10, IDENTITY_NORM, shuffle=False, targets="soft")))
    assert np.array_equal(y, np.eye(3, dtype=np.float32)[np.arange(10) % 3])
    unl = ImageSet(s.images, None, s.classes, s.subjects, "unlabeled")
    _, y = next(iter(BatchLoader(unl, 10, IDENTITY_NORM)))
    assert y is None
    import gc

    gc.collect()
    assert not _loader_threads()


def test_loader_thread_stops_when_iteration_is_abandoned_or_fails():
    s = _indexed_set(500)
    ld = BatchLoader(s, 10, IDENTITY_NORM, prefetch=2)
    it = iter(ld)
    next(it)
    assert it.thread.is_alive()  # producer is waiting on the full queue
    thread = it.thread
    del it
    thread.join(timeout=2)
    assert not thread.is_alive()

    for i, _ in enumerate(ld):  # break out of a for loop
        if i == 3:
            break
    it = iter(ld)  # a new epoch stops any previous producer
    next(it)
    it.close()
    assert not it.thread.is_alive()
    with iter(ld) as it2:
        next(it2)
    assert not it2.thread.is_alive()

    bad = BatchLoader(s, 10, Normalizer(np.zeros((5, 5)), np.ones((5, 5))), prefetch=2)
    with pytest.raises(ValueError, match="images"):
        for _ in bad:
            pass
    import gc

    gc.collect()
    for t in _loader_threads():
        t.join(timeout=2)
    assert not _loader_threads()
