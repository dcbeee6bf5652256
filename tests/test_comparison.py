"""The paired comparison of a run's models (comparison.py), the transfer baseline
(transfer_svm.py), and what a run writes from them."""

import json
import math

import numpy as np
import pytest

from tfe import cli
from tfe.comparison import (comparison_document, confusion, disagreements, mcnemar,
                            per_class_accuracy, pooled)
from tfe.data import ImageSet



def _split(labels, **preds):
    labels = np.asarray(labels)
    images = np.zeros((len(labels), 4, 4), np.uint8)
    test = ImageSet(images, labels, ["a", "b", "c"], np.arange(len(labels)))
    return {"test_labels": labels, "test_set": test,
            "test_predictions": {k: np.asarray(v) for k, v in preds.items()}}


def test_mcnemar_is_the_exact_binomial_test():
    labels = np.zeros(20, int)
    a = np.zeros(20, int)
    b = np.zeros(20, int)
    a[:7] = 1  # a wrong on 7 images, b right there
    b[7:9] = 1  # b wrong on 2 images, a right there
    only_a, only_b, p = mcnemar(labels, a, b)
    assert (only_a, only_b) == (2, 7)
    want = 2 * sum(math.comb(9, i) for i in range(3)) / 2 ** 9
    assert p == pytest.approx(want, rel=1e-12)
    assert mcnemar(labels, labels, labels) == (0, 0, 1.0)
    # thousands of discordant pairs neither overflow nor exceed 1
    big = np.zeros(6000, int)
    x, y = big.copy(), big.copy()
    x[:3000] = 1
    y[3000:] = 1
    assert mcnemar(big, x, y)[2] == pytest.approx(1.0)


def test_per_class_accuracy_and_pooling_over_splits():
    runs = [_split([0, 1, 2], baseline=[0, 1, 1], tfe_jl=[0, 1, 2]),
            _split([2, 2], baseline=[2, 0], tfe_jl=[2, 2])]
    labels, preds = pooled(runs, "baseline")
    assert labels.tolist() == [0, 1, 2, 2, 2] and preds.tolist() == [0, 1, 1, 2, 0]
    m = confusion(labels, preds, 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [1, 1, 1]]
    acc = per_class_accuracy(m, ["a", "b", "c"])
    assert acc == {"a": 100.0, "b": 100.0, "c": pytest.approx(100 / 3)}
    assert per_class_accuracy(np.zeros((2, 2), int), ["a", "b"]) == {"a": None, "b": None}
    doc = comparison_document(runs, ["a", "b", "c"])
    assert doc["tfe_jl_against"]["baseline"]["only_tfe_jl_right"] == 2
    assert doc["tfe_jl_against"]["baseline"]["only_other_right"] == 0
    assert doc["models"]["tfe_jl"]["per_class_acc"]["c"] == 100.0
    # a model missing from one split is not pooled from the others
    runs[1]["test_predictions"].pop("baseline")
    assert pooled(runs, "baseline") is None


def test_disagreements_are_the_images_one_model_gets_right():
    runs = [_split([0, 1, 2, 0], baseline=[0, 2, 1, 1], tfe_jl=[1, 1, 1, 0])]
    fixed, broken = disagreements(runs)
    assert [(y, a, b) for _, y, a, b in fixed] == [(1, 2, 1), (0, 1, 0)]
    assert [(y, a, b) for _, y, a, b in broken] == [(0, 0, 1)]


def test_linear_svm_chooses_c_on_validation_and_scores_test_once():
    pytest.importorskip("sklearn")
    from tfe.transfer_svm import linear_svm

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 3

    def draw(n):
        y = rng.integers(0, 3, n)
        return centres[y] + rng.normal(size=(n, 5)), y

    res = linear_svm(draw(300), draw(100), draw(100))
    assert res["C"] in (0.001, 0.01, 0.1, 1.0)
    assert res["val_acc"] > 90 and res["test_acc"] > 90
    assert len(res["test_predictions"]) == 100
    assert linear_svm(draw(300), draw(100), None)["test_acc"] is None


def test_a_run_writes_every_models_predictions_and_the_comparison(run_dir):
    doc = json.loads((run_dir / "results.json").read_text())
    comp = doc["comparison"]
    models = {"baseline", "tfe_jl", "baseline_more_epochs", "tfe_random_identity"}
    assert models <= set(comp["models"])
    saved = np.load(run_dir / "predictions.npz")
    labels = saved["split0/labels"]
    for name in models:
        pred = saved[f"split0/{name}"]
        # the saved predictions are the reported accuracy and the reported confusion
        entry = doc[name] if name in ("baseline", "tfe_jl") else doc["controls"][name]
        assert 100 * np.mean(pred == labels) == pytest.approx(entry["test_acc"])
        assert confusion(labels, pred, len(comp["classes"])).tolist() == \
            comp["models"][name]["confusion"]
    assert set(comp["tfe_jl_against"]) >= {"baseline", "baseline_more_epochs"}
    assert "McNemar" in cli.format_table(doc)


def test_a_run_scores_the_transfer_baseline_or_says_why_not(run_dir):
    doc = json.loads((run_dir / "results.json").read_text())
    transfer = doc["transfer_svm"]
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert transfer == {"skipped": "scikit-learn not installed"}
        return
    assert set(transfer) == {"deepid"}  # no teacher cache in this run
    assert 0 <= transfer["deepid"]["test_acc"] <= 100
    saved = np.load(run_dir / "predictions.npz")
    acc = 100 * np.mean(saved["split0/svm_deepid"] == saved["split0/labels"])
    assert acc == pytest.approx(transfer["deepid"]["test_acc"])
    assert "transfer: DeepID + SVM" in cli.format_table(doc)


def test_a_run_draws_the_confusions_and_the_contact_sheet(run_dir):
    png = b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "confusion.png").read_bytes()[:8] == png
    saved = np.load(run_dir / "predictions.npz")
    b, t, y = saved["split0/baseline"], saved["split0/tfe_jl"], saved["split0/labels"]
    if np.any((b == y) != (t == y)):
        assert (run_dir / "contact_sheet.png").read_bytes()[:8] == png


def test_without_scikit_learn_the_transfer_stage_says_it_was_skipped(monkeypatch):
    import sys

    from tfe.pipeline import transfer_document
    from tfe.transfer_svm import transfer_svm_runs

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now fails
    said = []
    res = transfer_svm_runs({}, None, 3, None, None, log=said.append)
    assert res == {"skipped": "scikit-learn not installed"}
    assert "scikit-learn" in said[0] and "skipped" in said[0]
    assert transfer_document([{"transfer_svm": res}]) == res
