"""Scores a finished FER+ run's saved models on PrivateTest again, to add what runs of an
older tfe did not write: every model's predictions, the paired comparison and the
transfer baseline (comparison.py, transfer_svm.py).

    python results/rescore_ferplus.py RUN_DIR --data-dir FERPLUS [--out RESULTS_DIR]

It loads ``split/<stage>.safetensors`` (the best-validation weights of each stage, the
ones the run scored), refuses to write anything unless each model's test accuracy equals
the one in RUN_DIR/results.json exactly, and then writes results.json (the run's own, with
the new sections), predictions.npz and confusion.png to RESULTS_DIR (default RUN_DIR).
Nothing is selected here: the models and the SVM's C are chosen on PublicTest as in a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from tfe.checkpoint import atomic_write_json
from tfe.comparison import comparison_document, write_predictions
from tfe.data.ferplus import load_ferplus
from tfe.modelfile import LoadedModel
from tfe.pipeline import Protocol, transfer_document
from tfe.train import evaluate
from tfe.transfer_svm import transfer_svm_runs

STAGES = {"baseline": ("emotion", ("baseline",)), "tfe_jl": ("joint", ("tfe_jl",)),
          "baseline_more_epochs": ("baseline_more_epochs", ("controls", "baseline_more_epochs")),
          "tfe_random_identity": ("tfe_random_identity", ("controls", "tfe_random_identity"))}


def _node(doc, path):
    for key in path:
        doc = (doc or {}).get(key)
    return doc


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out")
    args = p.parse_args(argv)
    out = args.out or args.run_dir
    with open(os.path.join(args.run_dir, "results.json")) as f:
        doc = json.load(f)
    splits = load_ferplus(args.data_dir, label_mode="majority")
    test = splits["test"]
    predictions = {}
    for name, (stage, path) in STAGES.items():
        model_path = os.path.join(args.run_dir, "split", f"{stage}.safetensors")
        if not os.path.exists(model_path):
            continue
        m = LoadedModel(model_path)
        acc, _, pred = evaluate(m.model, test, m.normalizer)
        reported = _node(doc, path)["test_acc"]
        if acc != reported:
            sys.exit(f"{model_path}: test accuracy {acc} differs from the run's {reported}")
        print(f"{name}: {acc:.2f} % (as reported)")
        predictions[name] = pred
    identity = LoadedModel(os.path.join(args.run_dir, "identity", "identity.safetensors"))
    protocol = Protocol(dataset="ferplus", device="cpu")
    transfer = transfer_svm_runs(splits, identity.model.state_dict(),
                                 identity.model.arch["num_identities"], identity.normalizer,
                                 protocol)
    for feature, r in transfer.items():
        if isinstance(r, dict):
            predictions[f"svm_{feature}"] = r.pop("test_predictions")
    run = {"test_set": test, "test_labels": test.labels, "test_predictions": predictions,
           "transfer_svm": transfer}
    classes = splits["train"].classes
    doc["comparison"] = comparison_document([run], classes)
    doc["transfer_svm"] = transfer_document([run])
    os.makedirs(out, exist_ok=True)
    atomic_write_json(os.path.join(out, "results.json"), doc)
    write_predictions(os.path.join(out, "predictions.npz"), [run])
    from tfe.plots import plot_confusion

    plot_confusion([run], classes, os.path.join(out, "confusion.png"), synthetic=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
