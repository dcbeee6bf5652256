"""What separates tfe's CK+48 baseline from an independent PyTorch implementation's.

    python results/recipe_study.py --data-dir CK+48 --out OUT [--fold-seeds 0 1 2]

The independent implementation (ResNet12, batch 64, lr 0.1, weight decay 5e-4, 40 epochs)
reports 77.98 ± 9.07 % on its own subject-independent 10 folds. This trains tfe's ResNet12
baseline with that recipe (tfe's cosine schedule and augmentation) on tfe's subject folds
under three protocols, on the same folds, so that each difference has one cause:

- ``select``: train on k - 2 folds, keep the epoch with the best validation accuracy
  (fold i + 1), score the test fold (tfe-train's protocol);
- ``last``: the same training run, its last epoch (no selection at all);
- ``last_with_val``: train on k - 1 folds (the validation fold trained on too), last epoch:
  a protocol without a validation split, as a recipe with a fixed epoch count can use.

Nothing is chosen on the test folds: each protocol fixes its epoch before the test fold is
read. ``--fold-seeds`` repeats everything on other subject partitions (how much the folds
themselves move the mean). Resumable (rerun the command); writes OUT/results.json.

    python results/recipe_study.py --report OUT/results.json [--against RUN/results.json]

prints the README's figures from a finished study: per partition each protocol's mean ± std,
the paired differences between protocols, and against a tfe-train run on the same folds
(its baseline, per fold; the fold hashes must match).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import tfe
from tfe import models, optim
from tfe import random as tfe_random
from tfe import resume as resume_file
from tfe.checkpoint import atomic_write_json
from tfe.data import Augmenter, Normalizer
from tfe.data.ckplus import load_ckplus
from tfe.data.folds import fold_list, hash_of, make_folds
from tfe.train import evaluate, train_stage

RECIPE = dict(model="resnet12", batch_size=64, lr=0.1, momentum=0.9, weight_decay=5e-4,
              epochs=40, schedule="cosine", augment=True)


def train_baseline(train, val, out_dir, seed, epochs):
    """ResNet12 with the recipe. Returns (the stage's result, the weights of the epoch
    chosen on ``val``, the model holding the weights of the last epoch, the normaliser)."""
    norm = Normalizer.fit(train.images)
    tfe_random.manual_seed(seed + 1)
    net = models.resnet12(num_classes=len(train.classes))
    opt = optim.SGD(net.parameters(), lr=RECIPE["lr"], momentum=RECIPE["momentum"],
                    weight_decay=RECIPE["weight_decay"])
    res = train_stage("emotion", net, opt, optim.CosineLR(opt, epochs), train, val, None, norm,
                      epochs=epochs, batch_size=RECIPE["batch_size"],
                      augmenter=Augmenter(seed=seed), seed=seed, out_dir=out_dir,
                      save_model=lambda path, m: None, progress=False, log=lambda m: None,
                      fingerprint="recipe-study")
    selected = net.state_dict()
    # The resume file holds the weights after the last epoch.
    resume_file.load(os.path.join(out_dir, "emotion.resume.safetensors"), net, opt,
                     "recipe-study")
    return res, selected, net, norm


def run_partition(data, fold_seed, out, epochs, log):
    folds = make_folds(data.subjects, data.labels, 10, fold_seed, "subject")
    rows = []
    for f in folds:
        row = {"fold": f.index}
        train, val, test = data.subset(f.train), data.subset(f.val), data.subset(f.test)
        folder = os.path.join(out, f"folds{fold_seed}", f"fold{f.index}")
        res, selected, net, norm = train_baseline(train, val, os.path.join(folder, "select"),
                                                  fold_seed, epochs)
        row["last"] = evaluate(net, test, norm)[0]
        net.load_state_dict(selected)
        row["select"] = evaluate(net, test, norm)[0]
        row["selected_epoch"] = res.best_epoch
        # Trained on the validation fold too: its epoch choice is meaningless and unused.
        with_val = data.subset(np.concatenate([f.train, f.val]))
        _, _, net, norm = train_baseline(with_val, val, os.path.join(folder, "with_val"),
                                         fold_seed, epochs)
        row["last_with_val"] = evaluate(net, test, norm)[0]
        log(f"fold seed {fold_seed} fold {f.index}: " + ", ".join(
            f"{k} {row[k]:.1f}" for k in ("select", "last", "last_with_val")))
        rows.append(row)
    return {"fold_hash": hash_of(fold_list(folds, data.subjects)), "per_fold": rows,
            **{k: _mean_std([r[k] for r in rows]) for k in ("select", "last",
                                                           "last_with_val")}}


def _mean_std(values):
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}


def document(args, partitions, wall_s):
    protocols = {"select": "k-2 training folds, epoch with the best validation accuracy "
                 "(fold i+1)",
                 "last": "the same run's last epoch",
                 "last_with_val": "k-1 training folds (validation fold included), last epoch"}
    return {"protocol": {"dataset": "ckplus", "data_dir": os.path.abspath(args.data_dir),
                         "folds": 10, "fold_kind": "subject",
                         "fold_seed": "the partition's seed, also the training seed",
                         "recipe": {**RECIPE, "epochs": args.epochs}, "protocols": protocols,
                         "threads": tfe.get_num_threads(), "tfe_version": tfe.__version__},
            "partitions": partitions, "wall_s": wall_s}


def _paired(a, b, label):
    d = np.asarray(a) - np.asarray(b)
    print(f"  {label}: {d.mean():+.1f} ± {d.std(ddof=1):.1f} points (better in "
          f"{int((d > 0).sum())}, equal {int((d == 0).sum())}, worse {int((d < 0).sum())})")


def report(path, against=None):
    with open(path) as f:
        doc = json.load(f)
    run = None
    if against:
        with open(against) as f:
            run = json.load(f)
    for seed, part in doc["partitions"].items():
        rows = part["per_fold"]
        col = {k: [r[k] for r in rows] for k in ("select", "last", "last_with_val")}
        print(f"fold seed {seed}: " + ", ".join(
            f"{k} {part[k]['mean']:.1f} ± {part[k]['std']:.1f} %" for k in col))
        _paired(col["last"], col["select"], "last - select")
        _paired(col["last_with_val"], col["last"], "last_with_val - last")
        if run is not None and run["protocol"]["fold_hash"] == part["fold_hash"]:
            base = run["baseline"]
            print(f"  {against}: baseline {base['test_acc']:.1f} ± {base['test_acc_std']:.1f} % "
                  f"(batch {run['protocol']['batch_size']}, lr {run['protocol']['lr']['emotion']})")
            _paired(col["select"], base["per_fold"], "select - that baseline")


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--report"]:
        ap = argparse.ArgumentParser(description="report a finished study")
        ap.add_argument("--report", required=True)
        ap.add_argument("--against")
        args = ap.parse_args(argv)
        report(args.report, args.against)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fold-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    data = load_ckplus(args.data_dir)
    start = time.time()
    partitions = {}
    for s in args.fold_seeds:  # results.json after each partition: a stopped run keeps them
        partitions[str(s)] = run_partition(data, s, args.out, args.epochs,
                                           lambda m: print(m, flush=True))
        atomic_write_json(os.path.join(args.out, "results.json"),
                          document(args, partitions, time.time() - start))
    for s, p in partitions.items():
        print(f"fold seed {s}: " + ", ".join(
            f"{k} {p[k]['mean']:.2f} ± {p[k]['std']:.2f}"
            for k in ("select", "last", "last_with_val")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
