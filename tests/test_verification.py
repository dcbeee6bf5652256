"""LFW-protocol face verification (tfe.data.verification): pairs.txt reading and writing,
generated pairs, and the 10-fold threshold-on-the-other-folds accuracy.

Fixtures: a small ImageSet built in memory and a pairs.txt written in tmp_path; the real
ORL copy under $TFE_DATA_DIR or ../shared/data is used by the last test only.
"""


import numpy as np
import pytest

from helpers import real_data
from tfe.data.imageset import ImageSet
from tfe.data.verification import (Pairs, generate_pairs, read_pairs, verification_accuracy,
                                   write_pairs)



def identity_set(people=30, per_person=6, root="faces"):
    """A folder-per-person style ImageSet: person p has per_person images, in order."""
    labels = np.repeat(np.arange(people), per_person)
    names = [f"{root}/person{p:02d}" for p in range(people)]
    return ImageSet(np.zeros((len(labels), 8, 8), np.uint8), labels, names,
                    np.array(names)[labels], name="identity:test")


LFW_STYLE = """2\t3
Aaron_Peirsol\t1\t2
Aaron_Peirsol\t3\t4
Abel_Pacheco\t1\t4
Aaron_Peirsol\t1\tAbel_Pacheco\t2
Aaron_Peirsol\t2\tAbdullah\t1
Abel_Pacheco\t3\tAbdullah\t2
Abdullah\t1\t2
Abdullah\t2\t3
Akhmed_Zakayev\t1\t2
Abdullah\t3\tAkhmed_Zakayev\t1
Abdullah\t1\tAaron_Peirsol\t4
Akhmed_Zakayev\t2\tAbel_Pacheco\t1
"""


def lfw_like_set():
    people = {"Aaron_Peirsol": 4, "Abdullah": 3, "Abel_Pacheco": 4, "Akhmed_Zakayev": 2}
    labels = np.concatenate([np.full(n, i) for i, n in enumerate(people.values())])
    names = [f"lfw/{p}" for p in people]
    return ImageSet(np.zeros((len(labels), 4, 4), np.uint8), labels, names,
                    np.array(names)[labels])


def test_read_pairs_lfw_format(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text(LFW_STYLE)
    pairs = read_pairs(path)
    assert len(pairs) == 12 and pairs.num_folds == 2
    assert pairs.same.tolist() == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3
    assert pairs.fold.tolist() == [0] * 6 + [1] * 6
    assert pairs.names[0] == ("Aaron_Peirsol", 1, "Aaron_Peirsol", 2)
    assert pairs.names[3] == ("Aaron_Peirsol", 1, "Abel_Pacheco", 2)
    assert pairs.first is None
    resolved = pairs.resolve(lfw_like_set())
    # Aaron_Peirsol images 0-3, Abdullah 4-6, Abel_Pacheco 7-10, Akhmed_Zakayev 11-12.
    assert resolved.first[:6].tolist() == [0, 2, 7, 0, 1, 9]
    assert resolved.second[:6].tolist() == [1, 3, 10, 8, 4, 5]


def test_read_pairs_single_set_header(tmp_path):
    path = tmp_path / "pairsDevTest.txt"
    path.write_text("1\nA\t1\t2\nA\t1\tB\t1\n")
    pairs = read_pairs(path)
    assert pairs.num_folds == 1 and pairs.same.tolist() == [True, False]


@pytest.mark.parametrize("text, message", [
    ("", "empty pairs file"),
    ("ten 300\n", ":1: expected a header"),
    ("1 1\nA 1 2\n", "promises 1 x \\(2 x 1\\) = 2 pairs, the file has 1"),
    ("1 1\nA 1 B 2\nA 1 B 2\n", ":2: expected 'name n1 n2'"),
    ("1 1\nA 1 2\nA 1 2\n", ":3: expected 'name1 n1 name2 n2'"),
    ("1 1\nA 1 x\nA 1 B 2\n", ":2: expected 'name n1 n2'"),
    ("1 1\nA 1 2\nA 1 A 2\n", ":3: a different-person pair names 'A' twice"),
])
def test_read_pairs_errors(tmp_path, text, message):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        read_pairs(path)
    assert "pairs.txt" in str(e.value)


def test_resolve_errors(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("1 1\nAbdullah 1 9\nAbdullah 1 Nobody 1\n")
    with pytest.raises(ValueError, match="'Abdullah' has 3 images, no image 9"):
        read_pairs(path).resolve(lfw_like_set())
    path.write_text("1 1\nAbdullah 1 2\nAbdullah 1 Nobody 1\n")
    with pytest.raises(ValueError, match="'Nobody' is not in the identity set"):
        read_pairs(path).resolve(lfw_like_set())
    a, b = lfw_like_set(), lfw_like_set()
    both = ImageSet(np.concatenate([a.images, b.images]),
                    np.concatenate([a.labels, b.labels + 4]),
                    a.classes + [c.replace("lfw/", "other/") for c in b.classes],
                    np.concatenate([a.subjects, b.subjects]))
    with pytest.raises(ValueError, match="'Abdullah' is ambiguous"):
        read_pairs(path).resolve(both)


def test_generate_pairs_balanced_disjoint_distinct():
    data = identity_set()
    pairs = generate_pairs(data, folds=10, per_fold=20, seed=1)
    assert len(pairs) == 10 * 40 and pairs.num_folds == 10
    labels = data.labels
    assert (labels[pairs.first] == labels[pairs.second]).tolist() == pairs.same.tolist()
    assert (pairs.first != pairs.second).all()
    for f in range(10):
        in_fold = pairs.fold == f
        assert pairs.same[in_fold].sum() == 20 and (~pairs.same[in_fold]).sum() == 20
        keys = set(zip(pairs.first[in_fold].tolist(), pairs.second[in_fold].tolist()))
        assert len(keys) == 40  # no repeated pair
    # Every person in one fold only (as in LFW).
    for c in range(data.num_classes):
        in_pairs = (labels[pairs.first] == c) | (labels[pairs.second] == c)
        assert len(set(pairs.fold[in_pairs].tolist())) <= 1
    again = generate_pairs(data, folds=10, per_fold=20, seed=1)
    assert np.array_equal(again.first, pairs.first) and np.array_equal(again.second, pairs.second)


def test_generate_pairs_mixed_sizes_every_fold_has_two_people():
    # Five people with many images and seven with few (as when ORL and Yale B people are
    # held out together): dealing by same-pair capacity alone left the big people alone in
    # their folds, with no different-person pairs.
    sizes = [65, 60, 63, 64, 64] + [10] * 7
    labels = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    names = [f"p{i}" for i in range(len(sizes))]
    data = ImageSet(np.zeros((len(labels), 4, 4), np.uint8), labels, names,
                    np.array(names)[labels])
    pairs = generate_pairs(data, folds=6, per_fold=30, seed=0)
    for f in range(6):
        in_fold = pairs.fold == f
        assert pairs.same[in_fold].sum() == 30 and (~pairs.same[in_fold]).sum() == 30


def test_generate_pairs_too_many():
    with pytest.raises(ValueError, match="at most 45 distinct same-person pairs"):
        generate_pairs(identity_set(people=30, per_person=6), folds=10, per_fold=300)
    with pytest.raises(ValueError, match="10 people cannot fill 10 folds"):
        generate_pairs(identity_set(people=10), folds=10, per_fold=1)


def test_write_read_round_trip(tmp_path):
    data = identity_set()
    pairs = generate_pairs(data, folds=5, per_fold=10, seed=0)
    path = tmp_path / "pairs.txt"
    write_pairs(pairs, path, data)
    assert path.read_text().splitlines()[0] == "5\t10"
    back = read_pairs(path).resolve(data)
    assert np.array_equal(back.same, pairs.same) and np.array_equal(back.fold, pairs.fold)
    assert sorted(zip(back.first.tolist(), back.second.tolist())) == sorted(
        zip(pairs.first.tolist(), pairs.second.tolist()))
    with pytest.raises(ValueError, match="need identity_set"):
        write_pairs(pairs, path)


def _features(data, noise, rng, dim=16):
    """One random direction per person plus noise: cosine similarity separates people."""
    centres = rng.normal(size=(data.num_classes, dim))
    return centres[data.labels] + noise * rng.normal(size=(len(data), dim))


def test_accuracy_perfect_and_chance(rng):
    data = identity_set()
    pairs = generate_pairs(data, folds=10, per_fold=30, seed=0)
    mean, std = verification_accuracy(_features(data, 0.01, rng), pairs)
    assert mean == 100.0 and std == 0.0
    mean, _ = verification_accuracy(rng.normal(size=(len(data), 16)), pairs)
    assert 35.0 < mean < 65.0
    mean_noisy, std_noisy = verification_accuracy(_features(data, 0.8, rng), pairs)
    assert 60.0 < mean_noisy < 100.0 and std_noisy > 0


def test_accuracy_threshold_from_other_folds():
    # Scores are the first feature (unit vectors at angle theta: cos = similarity). In fold 0
    # the same pairs score 0.9 and the different 0.1; in fold 1 the same pairs score 0.3 and
    # the different 0.2. The threshold learnt on fold 1 (between 0.2 and 0.3) classifies
    # fold 0 perfectly; the one learnt on fold 0 (between 0.1 and 0.9, the lowest such
    # midpoint: 0.5) calls every fold-1 pair different: 50 %.
    sims = [0.9, 0.1, 0.3, 0.2]
    feats = []
    for s in sims:
        feats += [[1.0, 0.0], [s, np.sqrt(1 - s * s)]]
    feats = np.array(feats)
    pairs = Pairs(np.array([True, False, True, False]), np.array([0, 0, 1, 1]),
                  np.array([0, 2, 4, 6]), np.array([1, 3, 5, 7]))
    mean, std = verification_accuracy(feats, pairs)
    assert mean == pytest.approx(75.0) and std == pytest.approx(25.0)


def test_accuracy_errors(tmp_path, rng):
    path = tmp_path / "pairs.txt"
    path.write_text(LFW_STYLE)
    with pytest.raises(ValueError, match="only named"):
        verification_accuracy(np.zeros((13, 4)), read_pairs(path))
    pairs = read_pairs(path).resolve(lfw_like_set())
    with pytest.raises(ValueError, match="features: 5 rows"):
        verification_accuracy(np.zeros((5, 4)), pairs)
    with pytest.raises(ValueError, match="expected \\[N, D\\]"):
        verification_accuracy(np.zeros(13), pairs)
    one_fold = Pairs(pairs.same, np.zeros_like(pairs.fold), pairs.first, pairs.second)
    with pytest.raises(ValueError, match="at least 2 folds"):
        verification_accuracy(np.ones((13, 4)), one_fold)


def test_real_orl_pairs():
    from tfe.data.folders import load_person_folders

    data = load_person_folders(real_data("orl_faces"), size=24, log=lambda m: None)
    pairs = generate_pairs(data, folds=10, per_fold=100, seed=0)
    x = data.images.reshape(len(data), -1).astype(np.float64)
    mean, std = verification_accuracy(x - x.mean(0), pairs)
    assert 70.0 < mean <= 100.0 and std < 15.0  # raw pixels already separate ORL people
