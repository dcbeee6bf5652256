"""DeepID distilled from a face teacher's cached descriptors (tfe.distill), the file column
of ImageSet that finds them, and starting the emotion network from a model file."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tfe import cli, models, optim
from tfe import random as tfe_random
from tfe.data import BatchLoader, ImageSet, Normalizer
from tfe.data.folders import load_class_folders, load_person_folders
from tfe.data.synthetic import SyntheticFaces
from tfe.distill import DistillationObjective, distillation_set, teacher_descriptors
from tfe.errors import InputError
from tfe.modelfile import save_model
from tfe.models import GivenIdentityTFE
from tfe.pipeline import Protocol, initial_emotion_weights, train_identity
from tfe.teacher import DIM, DescriptorCache, file_key
from tfe.teacher_features import other_recordings_mean
from tfe.train import evaluate, train_stage

QUIET = dict(progress=False, log=lambda *a: None)


def _write_people(root, imageset):
    """imageset's images as root/<person>/<i>.png; returns the folder."""
    for i, (img, person) in enumerate(zip(imageset.images, imageset.subjects)):
        folder = root / str(person)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    return root


def _fake_teacher(paths, cache_dir, skip=()):
    """A teacher that DeepID can learn: a fixed random projection of the 12x12 average-
    pooled image, stored under each file's content key as tfe-embed would."""
    w = np.random.default_rng(7).standard_normal((144, DIM)).astype(np.float32)
    cache = DescriptorCache(cache_dir, create=True)
    for p in paths:
        if p in skip:
            continue
        img = np.asarray(Image.open(p), np.float32).reshape(12, 4, 12, 4).mean((1, 3))
        cache.add(file_key(p), (img.reshape(-1) / 255.0 - 0.5) @ w)
    cache.flush()
    return cache_dir


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    faces = SyntheticFaces(seed=3)
    ids = _write_people(root / "ids", faces.identity_set(20, 8))
    extra = _write_people(root / "extra", faces.identity_set(6, 10))
    identity = load_person_folders([ids], log=lambda *a: None)
    unlabelled = load_person_folders([extra], log=lambda *a: None)
    cache = _fake_teacher(list(identity.sources) + list(unlabelled.sources), root / "cache")
    return identity, unlabelled, cache


def test_sources_follow_the_images(people):
    identity, _, _ = people
    assert identity.sources is not None and len(identity.sources) == len(identity)
    first = np.asarray(Image.open(identity.sources[5]))
    assert np.array_equal(first, identity.images[5])  # the file really is that image
    sub = identity.subset([5, 2])
    assert list(sub.sources) == [identity.sources[5], identity.sources[2]]
    with pytest.raises(ValueError, match=r"sources: expected shape \(8,\)"):
        type(identity)(identity.images[:8], identity.labels[:8], identity.classes,
                       identity.subjects[:8], sources=identity.sources[:7])


def test_teacher_descriptors_need_files(people):
    identity, _, cache = people
    vectors, found = teacher_descriptors(identity, cache, "ids")
    assert found.all() and vectors.shape == (len(identity), DIM)
    no_files = SyntheticFaces(seed=1).identity_set(3, 2)
    with pytest.raises(InputError, match="not read from files"):
        teacher_descriptors(no_files, cache, "synthetic ids")


def test_distillation_set_rows(people):
    identity, extra, cache = people
    merged, targets, summary = distillation_set(identity, [extra], cache, log=lambda *a: None)
    n, p = len(identity), identity.num_classes
    assert len(merged) == n + len(extra) and targets.shape == (n + len(extra), p + DIM)
    assert np.array_equal(targets[:n, :p].argmax(1), identity.labels)
    assert (targets[:n, :p].sum(1) == 1).all() and (targets[n:, :p] == 0).all()
    assert np.array_equal(merged.images[n:], extra.images)
    assert summary == {"images": n + len(extra), "with_descriptor": n + len(extra),
                       "with_person_label": n,
                       "sets": {identity.name: n, extra.name: len(extra)}}


def test_too_few_descriptors_is_one_line(people, tmp_path):
    identity, extra, _ = people
    sparse = _fake_teacher(list(identity.sources), tmp_path / "sparse")  # extra not embedded
    with pytest.raises(InputError, match=r"holds descriptors of only \d+ of \d+ distillation "
                       r"images; fill it first: tfe-embed"):
        distillation_set(identity, [extra], sparse)
    few_missing = _fake_teacher(list(identity.sources) + list(extra.sources),
                                tmp_path / "few", skip=set(extra.sources[:3]))
    notes = []
    _, targets, summary = distillation_set(identity, [extra], few_missing, log=notes.append)
    assert summary["with_descriptor"] == len(targets) - 3
    assert "3 of" in notes[0] and (targets[-len(extra):][:3, identity.num_classes:] == 0).all()


def test_objective_targets_and_labels():
    y = np.zeros((4, 3 + 2), np.float32)
    y[0, 1] = y[2, 0] = 1.0  # two labelled rows of four
    y[:, 3:] = np.arange(8, dtype=np.float32).reshape(4, 2)
    obj = DistillationObjective(3, weight=2.0)
    people, teacher = obj.targets(y)
    assert np.array_equal(people, y[:, :3]) and people.flags.c_contiguous
    assert np.array_equal(teacher, y[:, 3:]) and teacher.flags.c_contiguous
    assert obj.labels(y).tolist() == [1, -1, 0, -1]


def test_loader_gives_target_rows_as_they_are(people):
    identity, _, _ = people
    rows = np.arange(len(identity) * 3, dtype=np.float32).reshape(-1, 3)
    loader = BatchLoader(identity, 16, Normalizer.fit(identity.images), shuffle=True, seed=4,
                         targets=rows, prefetch=0)
    order = loader.order(0)
    x, y = next(iter(loader))
    assert np.array_equal(y, rows[order[:16]])
    with pytest.raises(ValueError, match="targets: 5 rows for"):
        BatchLoader(identity, 16, Normalizer.fit(identity.images), targets=rows[:5])


def test_train_identity_distils_the_teacher(people, tmp_path):
    identity, extra, cache = people
    p = Protocol(dataset="test", epochs_identity=6, lr_identity=0.05, batch_size=32,
                 identity_teacher=str(cache), augment=False)
    run = train_identity(identity, p, 0, str(tmp_path / "a"), distill_extra=[extra],
                         resume=False, **QUIET)
    s = run["summary"]
    h = s["history"]
    assert h[-1]["train_loss"] < h[0]["train_loss"] - 0.2
    assert s["distillation"]["images"] == len(extra) + s["distillation"]["with_person_label"]
    assert s["teacher_verification_acc"] is not None and s["verification_acc"] is not None
    assert set(run["state"]) == set(models.DeepID(run["num_identities"]).state_dict())
    # the same settings resume; the teacher is part of the settings
    again = train_identity(identity, p, 0, str(tmp_path / "a"), distill_extra=[extra], **QUIET)
    assert again["summary"]["history"] == h
    plain = Protocol(dataset="test", epochs_identity=6, lr_identity=0.05, batch_size=32,
                     augment=False)
    with pytest.raises(InputError, match="written by a run with other settings"):
        train_identity(identity, plain, 0, str(tmp_path / "a"), **QUIET)


def test_initial_emotion_weights(tmp_path, people):
    identity, _, _ = people
    norm = Normalizer.fit(identity.images)
    source = models.resnet12(num_classes=3)
    save_model(str(tmp_path / "r12.safetensors"), source, norm, ["a", "b", "c"])
    same = initial_emotion_weights(str(tmp_path / "r12.safetensors"),
                                   models.resnet12(num_classes=3), ["a", "b", "c"])
    assert all(np.array_equal(v, source.state_dict()[k]) for k, v in same.items())
    fresh = models.resnet12(num_classes=5)
    other = initial_emotion_weights(str(tmp_path / "r12.safetensors"), fresh, list("vwxyz"))
    assert np.array_equal(other["fc.weight"], fresh.state_dict()["fc.weight"])
    assert np.array_equal(other["stem_conv.weight"], source.state_dict()["stem_conv.weight"])
    with pytest.raises(InputError, match="needs a resnet18 emotion model"):
        initial_emotion_weights(str(tmp_path / "r12.safetensors"),
                                models.resnet18(num_classes=3), ["a", "b", "c"])


# ---- TFE over a given (teacher) identity feature, and the other-sequences control ------------
def test_other_recordings_mean_never_uses_the_images_own_sequence():
    d = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    subjects = np.array(["a", "a", "a", "b", "b"])
    sequences = np.array(["a/1", "a/1", "a/2", "b/1", "b/1"])
    found = np.array([True, True, True, True, False])
    out, has = other_recordings_mean(d, found, subjects, sequences)
    assert np.array_equal(out[0], d[2]) and np.array_equal(out[1], d[2])
    assert np.array_equal(out[2], d[:2].mean(0))
    assert has.tolist() == [True, True, True, False, False] and (out[3:] == 0).all()


def test_given_identity_model_uses_the_side_vectors(people, tmp_path):
    """A side vector that is the label itself: GivenIdentityTFE learns it in training and
    needs it in evaluation (shuffled vectors give chance)."""
    identity, _, _ = people
    k = 4
    labels = np.arange(len(identity)) % k
    base = ImageSet(identity.images, labels, list("abcd"), identity.subjects)
    side = np.eye(k, dtype=np.float32)[labels] * 3
    data = base.with_side(side)
    norm = Normalizer.fit(data.images)
    tfe_random.manual_seed(0)
    model = GivenIdentityTFE(models.resnet12(num_classes=k), k, k)
    opt = optim.SGD([{"params": model.parameter_groups()[1], "lr": 0.05}], lr=0.05,
                    momentum=0.9)
    res = train_stage("given", model, opt, optim.CosineLR(opt, 6), data, data, None, norm,
                      epochs=6, batch_size=32, out_dir=str(tmp_path), resume=False,
                      save_model=lambda path, m: None, progress=False, log=lambda *a: None)
    assert res.val_acc > 90
    shuffled = base.with_side(side[np.random.default_rng(0).permutation(len(side))])
    assert evaluate(model, shuffled, norm)[0] < 60
    with pytest.raises(ValueError, match="takes a vector beside each image"):
        train_stage("given", model, opt, optim.CosineLR(opt, 1), base, data, None, norm,
                    epochs=1, batch_size=32, out_dir=str(tmp_path / "b"), resume=False,
                    save_model=lambda path, m: None, progress=False)


def _write_ck48(root, faces):
    """CK+48-style folders from synthetic expressions: one sequence per (person, class)."""
    splits = faces.default_splits(train_people=6, val_people=2, test_people=2,
                                  identity_people=4, per_person_per_class=2)
    n, number = 0, {}
    for s in (splits["train"], splits["val"], splits["test"]):
        for img, label, person in zip(s.images, s.labels, s.subjects):
            folder = root / s.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            subject = f"S{number.setdefault(person, 100 + len(number)):03d}"
            Image.fromarray(img).save(folder / f"{subject}_{label + 1:03d}_{n:08d}.png")
            n += 1
    return root


def test_ckplus_run_with_a_teacher_reports_every_identity_variant(people, tmp_path):
    identity_set, extra, _ = people
    ck = _write_ck48(tmp_path / "ck", SyntheticFaces(seed=11))
    loaded = load_class_folders(ck, log=lambda *a: None)
    cache = _fake_teacher(list(identity_set.sources) + list(extra.sources) +
                          list(loaded.sources), tmp_path / "cache")
    id_root = os.path.dirname(os.path.dirname(identity_set.sources[0]))
    extra_root = os.path.dirname(os.path.dirname(extra.sources[0]))
    out = tmp_path / "run"
    args = ["--dataset", "ckplus", "--data-dir", str(ck), "--identity-dir", id_root,
            "--identity-teacher", str(cache), "--distill-dir", extra_root, "--folds", "3",
            "--max-folds", "1", "--epochs-identity", "1", "--epochs-emotion", "1",
            "--epochs-joint", "1", "--batch-size", "16", "--no-progress", "--out", str(out)]
    assert cli.train_main(args) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"]["identity_teacher"] == str(cache)
    given = doc["given_identity"]
    assert set(given) == {"tfe_teacher", "tfe_teacher_other_sequences"}
    assert all(0 <= g["test_acc"] <= 100 for g in given.values())
    assert doc["identity"]["distillation"]["sets"]["faces:extra"] == len(extra)
    assert doc["identity"]["teacher_verification_acc"] is not None
    # the distillation may never see an image of the expression data
    with pytest.raises(SystemExit):
        cli.train_main(args[:-1] + [str(tmp_path / "run2"), "--distill-dir", str(ck)])
