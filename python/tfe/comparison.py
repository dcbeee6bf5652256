"""Paired comparison of the models of one run on the same test images (the paper's Fig. 7
and Table 6 in numbers): per-class accuracy, confusion matrices, and McNemar's exact test
of TFE-JL against every other model.

Every function takes the per-split dicts of ``pipeline.run_split``, whose
``test_predictions`` maps a model name to its predicted classes on that split's test
images (``test_labels``); splits without a test side are skipped.
"""

from __future__ import annotations

import math

import numpy as np

# The models a run can hold, in the order of the results table.
MODELS = ("baseline", "tfe_jl", "baseline_more_epochs", "tfe_random_identity",
          "tfe_teacher", "tfe_teacher_other_sequences", "svm_deepid", "svm_teacher")


def pooled(per_split, name):
    """(labels, predictions) of model ``name`` over the test images of every split, or
    None when some split lacks the model (a partial pool would not be comparable)."""
    labels, preds = [], []
    for r in per_split:
        p = (r.get("test_predictions") or {}).get(name)
        if r.get("test_labels") is None:
            continue
        if p is None:
            return None
        labels.append(np.asarray(r["test_labels"]))
        preds.append(np.asarray(p))
    if not labels:
        return None
    return np.concatenate(labels), np.concatenate(preds)


def confusion(labels, preds, k):
    """Counts [true, predicted] (k × k)."""
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (labels, preds), 1)
    return m


def per_class_accuracy(matrix, classes):
    """{class: accuracy % (None without test images of that class)} from a confusion."""
    rows = matrix.sum(1)
    return {c: (100.0 * float(matrix[i, i]) / rows[i] if rows[i] else None)
            for i, c in enumerate(classes)}


def mcnemar(labels, a, b):
    """McNemar's exact test on paired predictions: (only a right, only b right, two-sided
    p-value of the binomial test of those discordant counts at 1/2)."""
    a_right, b_right = a == labels, b == labels
    n01, n10 = int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))
    n = n01 + n10
    if n == 0:
        return n01, n10, 1.0
    # exact binomial tail, in log space so that thousands of discordant pairs do not overflow
    k = min(n01, n10)
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
                 for i in range(k + 1)]
    top = max(log_terms)
    tail = math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    return n01, n10, min(1.0, 2.0 * tail)


def comparison_document(per_split, classes):
    """The results.json section: per model its pooled confusion and per-class accuracy;
    TFE-JL against each other model: images only TFE-JL gets right, only the other gets
    right, and McNemar's p (pooled over splits: each test image counts once)."""
    k = len(classes)
    models, pools = {}, {}
    for name in MODELS:
        pool = pooled(per_split, name)
        if pool is None:
            continue
        pools[name] = pool
        m = confusion(*pool, k)
        models[name] = {"test_images": int(m.sum()), "confusion": m.tolist(),
                        "per_class_acc": per_class_accuracy(m, classes)}
    if not models:
        return None
    paired = {}
    if "tfe_jl" in pools:
        labels, jl = pools["tfe_jl"]
        for name, (_, other) in pools.items():
            if name == "tfe_jl":
                continue
            only_jl, only_other, p = mcnemar(labels, jl, other)
            paired[name] = {"only_tfe_jl_right": only_jl, "only_other_right": only_other,
                            "mcnemar_p": p}
    return {"classes": list(classes), "models": models, "tfe_jl_against": paired,
            "note": "pooled over the test images of every split; McNemar's exact two-sided "
                    "test on the images where exactly one of the two models is right, "
                    "which assumes independent images: several frames of one recording "
                    "(CK+ sequences) are not, so p is optimistic there"}


def disagreements(per_split, first="baseline", second="tfe_jl"):
    """Test images where exactly one of two models is right, for the contact sheet:
    two lists (``first`` wrong and ``second`` right; the reverse) of
    (image uint8 [H, W], true class, first's prediction, second's prediction)."""
    fixed, broken = [], []
    for r in per_split:
        preds = r.get("test_predictions") or {}
        test = r.get("test_set")
        if test is None or first not in preds or second not in preds:
            continue
        a, b, y = np.asarray(preds[first]), np.asarray(preds[second]), test.labels
        for i in np.flatnonzero((a != y) & (b == y)):
            fixed.append((test.images[i], int(y[i]), int(a[i]), int(b[i])))
        for i in np.flatnonzero((a == y) & (b != y)):
            broken.append((test.images[i], int(y[i]), int(a[i]), int(b[i])))
    return fixed, broken


def write_predictions(path, per_split):
    """Every model's test predictions, atomically, as ``predictions.npz``: per split
    ``split<i>/labels``, ``split<i>/files`` (the test images' files below their common
    folder) and ``split<i>/<model>``, so that any paired comparison can be redone later."""
    import io
    import os

    from .checkpoint import atomic_write_bytes

    arrays = {}
    for i, r in enumerate(per_split):
        if r.get("test_labels") is None:
            continue
        arrays[f"split{i}/labels"] = np.asarray(r["test_labels"], np.int16)
        sources = getattr(r.get("test_set"), "sources", None)
        if sources is not None and len(sources):
            root = os.path.dirname(os.path.commonpath([os.path.abspath(f) for f in sources]))
            arrays[f"split{i}/files"] = np.array([os.path.relpath(os.path.abspath(f), root)
                                                  for f in sources])
        for name, pred in (r.get("test_predictions") or {}).items():
            arrays[f"split{i}/{name}"] = np.asarray(pred, np.int16)
    if not arrays:
        return
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, [buf.getvalue()])
