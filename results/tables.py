"""The README's results tables, made from the experiments' results.json files.

    python results/tables.py results/<experiment> [results/<experiment> ...]

prints, per experiment, one Markdown row per model: test accuracy mean ± std over folds
(or seeds), and the paired per-fold difference of the reference model (TFE-JL, or TFE over
the teacher's descriptor when there is one) minus that model, with the folds where it is
better / equal / worse; then the per-class accuracies of every model and TFE-JL against
each on the same test images (McNemar's exact test). Rows given by several experiments (a variant run that reuses a
finished run's baseline) are taken from the first that has them.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

ROWS = [  # (key path in results.json, label)
    (("baseline",), "baseline (ResNet)"),
    (("tfe_jl",), "TFE-JL"),
    (("controls", "baseline_more_epochs"), "control: baseline + the joint stage's epochs"),
    (("controls", "tfe_random_identity"), "control: TFE with an untrained DeepID"),
    (("given_identity", "tfe_teacher"), "TFE over the teacher's descriptor (frozen)"),
    (("given_identity", "tfe_teacher_other_sequences"),
     "control: the person's descriptor from other sequences"),
    (("transfer_svm", "deepid"), "transfer: DeepID feature + linear SVM"),
    (("transfer_svm", "teacher"), "transfer: teacher's descriptor + linear SVM"),
]


def _entry(doc, path):
    node = doc
    for key in path:
        node = (node or {}).get(key)
    return node


def _fmt(values):
    got = np.array([v for v in values if v is not None], float)
    if not len(got):
        return "-"
    if len(got) == 1:
        return f"{got[0]:.2f}"
    return f"{got.mean():.2f} ± {got.std(ddof=1):.2f}"


def paired(reference, other):
    """Mean ± std of reference - other over the folds both have, and the counts of folds
    where the reference is better, equal and worse."""
    pairs = [(a, b) for a, b in zip(reference, other) if a is not None and b is not None]
    if not pairs:
        return "-"
    d = np.array([a - b for a, b in pairs])
    spread = f" ± {d.std(ddof=1):.2f}" if len(d) > 1 else ""
    wins, ties = int((d > 1e-9).sum()), int((np.abs(d) <= 1e-9).sum())
    return f"{d.mean():+.2f}{spread} ({wins}/{ties}/{len(d) - wins - ties})"


def _deepid(doc):
    """What the run's DeepID knows."""
    if doc["protocol"].get("identity_teacher"):
        return "TFE-JL, DeepID distilled from the teacher"
    people = (doc.get("identity") or {}).get("people")
    return f"TFE-JL, DeepID trained on {people} people" if people else "TFE-JL"


def _label(doc, path, label):
    """A row's label; the rows of DeepID say which DeepID it is."""
    if path == ("tfe_jl",):
        return _deepid(doc)
    if path == ("transfer_svm", "deepid"):
        return "transfer: " + _deepid(doc)[len("TFE-JL, "):] + " + linear SVM"
    return label


def table(docs, name=""):
    rows = {}
    for doc in docs:
        for path, label in ROWS:
            entry = _entry(doc, path)
            label = _label(doc, path, label)
            if entry and entry.get("per_fold") and label not in rows:
                model = "linear SVM" if path[0] == "transfer_svm" else entry["model"]
                rows[label] = (model, entry["per_fold"])
    teacher = ROWS[4][1]
    jl = [label for label in rows if label.startswith("TFE-JL")]
    ref_label = teacher if teacher in rows else jl[-1]
    reference = rows[ref_label][1]
    proto = docs[0]["protocol"]
    unit = "seeds" if proto["fold_kind"] == "seed" else f"{proto['fold_kind']} folds"
    lines = [f"{name}: {proto['dataset']}, {len(reference)} {unit}; paired difference = "
             f"{ref_label} − row (better/equal/worse)", "",
             "| model | | test accuracy % | paired difference |", "|---|---|---:|---:|"]
    transfer = [label for label in rows if label.startswith("transfer: ")]
    order = ([label for _, label in ROWS[:1]] + jl + [label for _, label in ROWS[2:6]] +
             transfer)
    for label in order:
        if label in rows:
            model, per = rows[label]
            diff = "" if label == ref_label else paired(reference, per)
            lines.append(f"| {label} | {model} | {_fmt(per)} | {diff} |")
    return "\n".join(lines)


SHORT = {"baseline": "baseline", "baseline_more_epochs": "baseline + epochs",
         "tfe_random_identity": "untrained DeepID", "tfe_teacher": "TFE over teacher",
         "tfe_teacher_other_sequences": "other sequences", "svm_teacher": "SVM: teacher"}


def _short(doc, key):
    """A model's column name in the per-class table."""
    if key == "tfe_jl":
        return _deepid(doc)
    if key == "svm_deepid":
        return "SVM: " + _deepid(doc)[len("TFE-JL, "):]
    return SHORT.get(key, key)


def per_class(docs, name=""):
    """Per-class test accuracy (pooled over folds) of every model the runs compared, and
    TFE-JL against each on the same images (McNemar's exact test)."""
    models, paired_rows = {}, []
    for doc in docs:
        comp = doc.get("comparison")
        if not comp:
            continue
        classes = comp["classes"]
        for key, entry in comp["models"].items():
            models.setdefault(_short(doc, key), entry)
        for key, v in comp["tfe_jl_against"].items():
            paired_rows.append(f"| {_deepid(doc)} | {_short(doc, key)} | "
                               f"{v['only_tfe_jl_right']} | {v['only_other_right']} | "
                               f"{v['mcnemar_p']:.2g} |")
    if not models:
        return f"{name}: no comparison in these results"
    names = list(models)
    lines = [f"{name}: per-class test accuracy % (pooled over folds)", "",
             "| class | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for c in classes:
        cells = [models[n]["per_class_acc"][c] for n in names]
        lines.append(f"| {c} | " + " | ".join("-" if v is None else f"{v:.1f}"
                                              for v in cells) + " |")
    lines += ["", "| TFE-JL | against | only TFE-JL right | only the other right | McNemar p |",
              "|---|---|---:|---:|---:|", *paired_rows]
    return "\n".join(lines)


def main(argv):
    if not argv:
        print(__doc__.strip())
        return 2
    docs = []
    for folder in argv:
        with open(os.path.join(folder, "results.json")) as f:
            docs.append(json.load(f))
    name = ", ".join(os.path.basename(os.path.normpath(f)) for f in argv)
    print(table(docs, name))
    print()
    print(per_class(docs, name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
