"""How much could knowing who-looks-how help on the synthetic faces, at best?

    python results/look_oracle.py --out OUT [--seed 100] [--epochs-emotion 24]

The default run's identity branch can only help through what it knows about a person's
resting look. This gives the joint model that knowledge perfectly: the TFE head over the
person's true resting look (one-hot, from the generator) instead of a DeepID feature,
trained like the joint stage from the same baseline, against the same head over zeros (a
fresh head and more training, no knowledge). If the perfect feature adds little, no
identity network can add more.

Data and settings are the default run's (``tfe-train`` with no arguments: its generator,
split sizes and schedule) on a development seed; only validation people are scored, never
test people. Also prints the baseline's neutral recall per resting look (whether its
errors are resting looks read as expressions, or perception) and every model's accuracy
per class. Writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

import tfe
from tfe import models, optim
from tfe import random as tfe_random
from tfe.checkpoint import atomic_write_json
from tfe.cli import _synthetic_faces
from tfe.data import Augmenter, Normalizer
from tfe.data.synthetic import RESTING_LOOKS
from tfe.pipeline import Protocol, _sgd, _stage_args
from tfe.train import evaluate, train_stage


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=100, help="a development seed (default 100)")
    ap.add_argument("--epochs-emotion", type=int)
    ap.add_argument("--epochs-joint", type=int)
    ap.add_argument("--head-only", action="store_true", help="train only the TFE head (the "
                    "emotion branch frozen, the head at 10x the joint learning rate)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    tfe.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as work:  # the stages' resume files
        doc = study(a, work)
    os.makedirs(a.out, exist_ok=True)
    atomic_write_json(os.path.join(a.out, "results.json"), doc)
    print(json.dumps({k: v for k, v in doc.items() if k != "protocol"}, indent=1))
    return 0


def study(a, work) -> dict:
    """The baseline, then the head over the true look and over zeros; the results document."""
    p = Protocol(dataset="synthetic")
    p.epochs_emotion = a.epochs_emotion or p.epochs_emotion
    p.epochs_joint = a.epochs_joint or p.epochs_joint
    faces = _synthetic_faces(a.seed)
    splits = faces.default_splits(identity=False)
    train, val = splits["train"], splits["val"]

    def looks(s):
        return np.array([RESTING_LOOKS.index(faces.identity(int(n[5:])).resting)
                         for n in s.subjects])

    args = _stage_args(p, a.seed, work, False, False, "", lambda m: print(m, file=sys.stderr))
    norm, aug = Normalizer.fit(train.images), Augmenter(seed=a.seed)
    tfe_random.manual_seed(a.seed + 1)
    resnet = models.resnet12(num_classes=8)
    opt = _sgd([{"params": resnet.parameters(), "lr": p.lr_emotion}], p)
    base = train_stage("emotion", resnet, opt, optim.CosineLR(opt, p.epochs_emotion), train,
                       val, None, norm, epochs=p.epochs_emotion, augmenter=aug,
                       save_model=lambda *_: None, **args)
    def per_class(pred):
        return {c: 100.0 * float((pred[val.labels == i] == i).mean())
                for i, c in enumerate(val.classes)}

    _, _, pred = evaluate(resnet, val, norm)
    val_looks = looks(val)
    neutral_recall = {}
    for i, look in enumerate(RESTING_LOOKS):
        rows = (val_looks == i) & (val.labels == 0)
        if rows.any():
            neutral_recall[look] = 100.0 * float((pred[rows] == 0).mean())
    doc = {"protocol": {**p.as_dict(), "seed": a.seed, "selection": "validation",
                        "head_only": a.head_only,
                        "scored": "validation people only"},
           "baseline": {"val_acc": base.val_acc, "curve": [r["val_acc"] for r in base.history],
                        "neutral_recall_by_resting_look": neutral_recall,
                        "per_class_val_acc": per_class(pred)}}
    state = resnet.state_dict()
    eye = np.eye(len(RESTING_LOOKS), dtype=np.float32)
    for name, side in (("true_resting_look", lambda s: eye[looks(s)]),
                       ("zeros", lambda s: np.zeros((len(s), len(RESTING_LOOKS)), np.float32))):
        tfe_random.manual_seed(a.seed + 4)
        emotion = models.resnet12(num_classes=8)
        emotion.load_state_dict(state)
        model = models.GivenIdentityTFE(emotion, len(RESTING_LOOKS), 8)
        trained = list(model.head.parameters()) if a.head_only else model.parameter_groups()[1]
        opt = _sgd([{"params": trained, "lr": p.lr_joint * (10 if a.head_only else 1)}], p)
        r = train_stage(name, model, opt, optim.CosineLR(opt, p.epochs_joint),
                        train.with_side(side(train)), val.with_side(side(val)), None, norm,
                        epochs=p.epochs_joint, augmenter=aug, save_model=lambda *_: None,
                        **args)
        _, _, pred = evaluate(model, val.with_side(side(val)), norm)
        doc[name] = {"val_acc": r.val_acc, "curve": [x["val_acc"] for x in r.history],
                     "per_class_val_acc": per_class(pred)}
    doc["gain_of_perfect_look_knowledge"] = doc["true_resting_look"]["val_acc"] - \
        doc["zeros"]["val_acc"]
    return doc


if __name__ == "__main__":
    sys.exit(main())
