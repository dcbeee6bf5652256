"""The paper's pipeline, one run per seed (synthetic data) or per fold (real data):

1. identity: DeepID pre-trained to classify people of the identity set (one image per
   person held out for validation), and, given a teacher cache, distilled from a face
   teacher on every face the stage may see (distill.py);
2. emotion: the ResNet baseline trained on the expression training split;
3. joint: TFE = DeepID (pre-trained) + ResNet (pre-trained) + TFE head, fine-tuned end to
   end, the identity branch at its own (lower) learning rate;
4. controls, so that the gain from identity is not confused with more training: the
   baseline fine-tuned for the same extra epochs with the same schedule, and the joint
   model with an untrained (random) identity branch;
5. with a teacher: TFE over the teacher's frozen descriptor of the same image (how much
   identity information can help at best) and, where the data know each person's
   recordings (CK+ sequences), over the person's mean descriptor from *other* sequences
   (knowing who it is, without this image's expression cues).
6. the paper's transfer baseline (its Table 5): the identity feature alone (DeepID's, and
   the teacher's descriptor) into a linear SVM, C chosen on validation (transfer_svm.py).

Every stage selects its epoch on the validation split and reports the test split once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import Device, __version__, _native, get_num_threads, models, optim
from . import random as tfe_random
from .data import Augmenter, ImageSet, Normalizer
from .data.verification import generate_pairs, verification_accuracy
from .comparison import comparison_document
from .distill import DistillationObjective, DistilledDeepID, distillation_set
from .errors import InputError
from .modelfile import save_model
from .teacher_features import teacher_descriptors
from .transfer_svm import transfer_svm_runs
from .train import batched_forward, train_stage
from .verdict import identity_verdict, stage_plateaus


@dataclass
class Protocol:
    """Hyper-parameters of one pipeline run (recorded in results.json). The defaults are
    the synthetic default run's; ``Protocol.for_dataset`` gives the paper's for its data."""

    dataset: str
    emotion_model: str = "resnet12"
    epochs_identity: int = 30
    epochs_emotion: int = 24
    epochs_joint: int = 6
    batch_size: int = 32
    lr_identity: float = 0.05
    lr_emotion: float = 0.05
    lr_joint: float = 0.01
    lr_joint_identity: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    controls: bool = True
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    device: Device = field(default_factory=lambda: Device("cpu"))
    cuda_graph: bool = True
    # Optional settings (None: not used; left out of resume fingerprints, so that files
    # written before a setting existed still resume).
    identity_teacher: str | None = None  # teacher cache folder: DeepID is distilled from it
    distill_weight: float | None = None  # weight of the cosine loss (1 when None)
    init_emotion: str | None = None  # model file the emotion network starts from

    def as_dict(self) -> dict:
        """The settings as JSON values (the device by its name)."""
        return {**asdict(self), "device": str(self.device)}

    @classmethod
    def for_dataset(cls, dataset: str) -> "Protocol":
        """The settings of ``dataset``: the defaults above with DATASET_SETTINGS' changes."""
        return cls(dataset=dataset, **DATASET_SETTINGS.get(dataset, {}))


# The paper's settings for its data sets (section 4), where they differ from Protocol's
# defaults (the synthetic default, sized to run in minutes on two CPU cores).
DATASET_SETTINGS = {
    "ckplus": dict(epochs_identity=30, epochs_emotion=40, epochs_joint=20, batch_size=128,
                   lr_identity=0.01, lr_emotion=0.16, seeds=[0]),
    "ferplus": dict(emotion_model="resnet18", epochs_identity=30, epochs_emotion=60,
                    epochs_joint=20, batch_size=128, lr_identity=0.01, lr_emotion=0.1,
                    lr_joint=0.001, seeds=[0]),
}


def _sgd(groups, p: Protocol):
    return optim.SGD(groups, lr=groups[0]["lr"], momentum=p.momentum, weight_decay=p.weight_decay)


def split_identity_validation(identity_set, seed):
    """One image per person held out for validation, as in the paper."""
    rng = np.random.default_rng(seed)
    val = []
    for person in np.unique(identity_set.labels):
        idx = np.flatnonzero(identity_set.labels == person)
        val.append(rng.choice(idx))
    val = np.sort(np.array(val))
    train = np.setdiff1d(np.arange(len(identity_set)), val)
    return identity_set.subset(train), identity_set.subset(val)


def _stage_args(protocol, seed, out_dir, progress, resume, label, log, extra=None):
    # Epoch counts may grow and the device may change without invalidating a resume file.
    settings = {k: v for k, v in protocol.as_dict().items()
                if not k.startswith("epochs_") and k not in ("device", "cuda_graph")
                and v is not None}
    settings.update(seed=seed, **{k: v for k, v in (extra or {}).items() if v is not None})
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    prefix = f"{label}: " if label else ""
    return dict(seed=seed, out_dir=out_dir, progress=progress, resume=resume,
                fingerprint=fingerprint, batch_size=protocol.batch_size, label=label,
                cuda_graph=protocol.cuda_graph,
                log=lambda msg: log(prefix + msg))


def split_verification_people(identity_set, seed, fraction=0.15, min_people=8):
    """People held out of DeepID training to measure face verification on unseen faces
    (as LFW's people are unseen by a CASIA-trained DeepID). Returns (training set with
    labels renumbered, held-out set or None when there are too few people)."""
    people = np.unique(identity_set.labels)
    n = max(min_people, int(round(fraction * len(people))))
    if len(people) < 2 * n:
        return identity_set, None
    held = np.random.default_rng(seed).choice(people, n, replace=False)
    is_held = np.isin(identity_set.labels, held)
    keep = identity_set.subset(~is_held)
    kept_people = np.unique(keep.labels)
    remap = np.full(len(identity_set.classes), -1)
    remap[kept_people] = np.arange(len(kept_people))
    names = [identity_set.classes[i] for i in kept_people]
    train = ImageSet(keep.images, remap[keep.labels], names, keep.subjects,
                     name=identity_set.name, synthetic=identity_set.synthetic,
                     sources=keep.sources)
    return train, identity_set.subset(is_held)


def verification_score(deepid, held_out, normalizer, seed, log=print, teacher=None):
    """LFW-protocol accuracy (mean, std %) of cosine similarity on DeepID features of the
    held-out people: same/different pairs, each person in one fold, threshold chosen on the
    other folds. ``teacher``: the teacher's descriptors of ``held_out`` [N, D]; then returns
    ((mean, std) of DeepID, (mean, std) of the teacher on the same pairs)."""
    folds = min(10, len(np.unique(held_out.labels)) // 2)
    pairs = None
    for per_fold in (300, 100, 30, 10, 3):
        try:
            pairs = generate_pairs(held_out, folds=folds, per_fold=per_fold, seed=seed)
            break
        except ValueError:
            continue
    if pairs is None:
        log("identity: too few held-out images for verification pairs; not measured")
        return (None, None) if teacher is None else ((None, None), (None, None))
    features = batched_forward(deepid.features, held_out.images, normalizer)
    if teacher is None:
        return verification_accuracy(features, pairs)
    return verification_accuracy(features, pairs), verification_accuracy(teacher, pairs)


def train_identity(identity_set, protocol: Protocol, seed: int, out_dir: str, progress=True,
                   log=print, resume=True, label="", distill_extra=()):
    """Stage 1: DeepID on a folder-per-person set; one image per person validates, and
    some people are held out entirely for a face-verification score. With
    ``protocol.identity_teacher`` it is distilled from the teacher too, on the identity
    training images and on the ``distill_extra`` sets (faces without person labels, e.g.
    the expression training split: never validation or test images).
    Returns a dict with the trained weights ("state"), its size, the normalizer it was
    trained with and its summary."""
    os.makedirs(out_dir, exist_ok=True)
    p = protocol
    tfe_random.manual_seed(seed)
    identity_set, held_out = split_verification_people(identity_set, seed)
    id_train, id_val = split_identity_validation(identity_set, seed)
    deepid = models.DeepID(identity_set.num_classes, seed=seed,
                           input_size=identity_set.images.shape[-1])
    train_set, targets, model, objective, distill = id_train, "auto", deepid, None, None
    if p.identity_teacher:
        train_set, targets, distill = distillation_set(id_train, list(distill_extra),
                                                       p.identity_teacher, log)
        model = DistilledDeepID(deepid, targets.shape[1] - identity_set.num_classes)
        objective = DistillationObjective(identity_set.num_classes, p.distill_weight or 1.0)
        log(f"identity: distilling the teacher into DeepID on {distill['images']} images "
            f"({distill['with_person_label']} with person labels)")
    model.to(p.device)
    id_norm = Normalizer.fit(train_set.images)
    opt = _sgd([{"params": model.parameters(), "lr": p.lr_identity}], p)
    args = _stage_args(p, seed, out_dir, progress, resume, label, log,
                       {"identity_people": list(identity_set.classes), "distillation": distill})
    res = train_stage("identity", model, opt, optim.CosineLR(opt, p.epochs_identity), train_set,
                      id_val, None, id_norm, epochs=p.epochs_identity,
                      augmenter=Augmenter(seed=seed) if p.augment else None,
                      save_model=lambda path, m: save_model(path, deepid, id_norm,
                                                            id_train.classes),
                      objective=objective, targets=targets, **args)
    summary = {"model": "deepid", "val_acc": res.val_acc, "verification_acc": None,
               "verification_std": None, "verification_people": 0,
               "best_epoch": res.best_epoch, "history": res.history}
    if held_out is not None:
        teacher = None
        if p.identity_teacher:
            teacher, found = teacher_descriptors(held_out, p.identity_teacher, held_out.name)
            if not found.all():
                raise InputError(f"{p.identity_teacher}: no teacher descriptor for "
                                 f"{int((~found).sum())} held-out identity images")
        scores = verification_score(deepid, held_out, id_norm, seed, log, teacher)
        mine, theirs = scores if teacher is not None else (scores, (None, None))
        summary.update(verification_acc=mine[0], verification_std=mine[1],
                       verification_people=len(np.unique(held_out.labels)))
        if teacher is not None:
            summary.update(teacher_verification_acc=theirs[0],
                           teacher_verification_std=theirs[1])
    if distill is not None:
        summary["distillation"] = {**distill, "teacher_cache": os.path.abspath(
            p.identity_teacher), "weight": p.distill_weight or 1.0}
    return {"state": deepid.state_dict(), "num_identities": identity_set.num_classes,
            "normalizer": id_norm, "summary": summary, "wall_s": res.wall_s}


def run_split(splits, protocol: Protocol, seed: int, out_dir: str, progress=True, log=print,
              resume=True, label="", identity=None):
    """All stages on one split dict {train, val, test[, identity]}; returns per-stage results.

    ``identity``: a trained identity stage (from ``train_identity``) shared by several
    splits; when None it is trained here on ``splits["identity"]``. ``label`` prefixes log
    lines (e.g. "synthetic seed 0") so every figure says what data it comes from."""
    os.makedirs(out_dir, exist_ok=True)
    train, val, test = splits["train"], splits["val"], splits["test"]
    classes = train.classes
    p = protocol
    aug = Augmenter(seed=seed) if p.augment else None
    stage_args = _stage_args(p, seed, out_dir, progress, resume, label, log,
                             {"split": describe_split(splits)})
    out = {"wall_s": {}}

    # 1. identity
    if identity is None:
        identity = train_identity(splits["identity"], p, seed, out_dir, progress, log, resume,
                                  label)
        out["wall_s"]["identity"] = identity["wall_s"]
    out["identity"] = identity["summary"]
    identity_state, num_identities = identity["state"], identity["num_identities"]

    # 2. emotion baseline
    norm = Normalizer.fit(train.images)
    save = lambda path, m: save_model(path, m, norm, classes, p.as_dict())  # noqa: E731
    tfe_random.manual_seed(seed + 1)
    resnet = models.ARCHITECTURES[p.emotion_model](num_classes=len(classes))
    if p.init_emotion:
        resnet.load_state_dict(initial_emotion_weights(p.init_emotion, resnet, classes))
    resnet.to(p.device)
    opt = _sgd([{"params": resnet.parameters(), "lr": p.lr_emotion}], p)
    res = train_stage("emotion", resnet, opt, optim.CosineLR(opt, p.epochs_emotion), train, val,
                      test, norm, epochs=p.epochs_emotion, augmenter=aug, save_model=save,
                      **stage_args)
    out["baseline"] = _summary(p.emotion_model, res)
    out["wall_s"]["emotion"] = res.wall_s
    # every model's test predictions, for the paired comparison (comparison.py)
    predictions = {"baseline": res.test_predictions}
    emotion_state = resnet.state_dict()

    # 3. joint learning
    def joint(name, identity_weights):
        tfe_random.manual_seed(seed + 2)
        ident = models.DeepID(num_identities, seed=seed, input_size=train.images.shape[-1])
        if identity_weights is not None:
            ident.load_state_dict(identity_weights)
        emo = models.ARCHITECTURES[p.emotion_model](num_classes=len(classes))
        emo.load_state_dict(emotion_state)
        model = models.TFE(ident, emo, len(classes)).to(p.device)
        id_params, rest = model.parameter_groups()
        opt = _sgd([{"params": rest, "lr": p.lr_joint},
                    {"params": id_params, "lr": p.lr_joint_identity}], p)
        return train_stage(name, model, opt, optim.CosineLR(opt, p.epochs_joint), train, val,
                           test, norm, epochs=p.epochs_joint, augmenter=aug, save_model=save,
                           **stage_args)

    res = joint("joint", identity_state)
    out["tfe_jl"] = _summary("tfe" + p.emotion_model[len("resnet"):], res)
    out["wall_s"]["joint"] = res.wall_s
    predictions["tfe_jl"] = res.test_predictions

    # 4. controls
    out["controls"] = None
    if p.controls:
        controls = {}
        tfe_random.manual_seed(seed + 3)
        more = models.ARCHITECTURES[p.emotion_model](num_classes=len(classes))
        more.load_state_dict(emotion_state)
        more.to(p.device)
        opt = _sgd([{"params": more.parameters(), "lr": p.lr_joint}], p)
        res = train_stage("baseline_more_epochs", more, opt, optim.CosineLR(opt, p.epochs_joint),
                          train, val, test, norm, epochs=p.epochs_joint, augmenter=aug,
                          save_model=save, **stage_args)
        controls["baseline_more_epochs"] = _summary(p.emotion_model, res)
        predictions["baseline_more_epochs"] = res.test_predictions
        res = joint("tfe_random_identity", None)
        controls["tfe_random_identity"] = _summary("tfe" + p.emotion_model[len("resnet"):], res)
        predictions["tfe_random_identity"] = res.test_predictions
        out["controls"] = controls
        out["wall_s"]["controls"] = sum(c["wall_s"] for c in controls.values())

    # 5. the teacher's descriptor as the identity feature
    out["given_identity"] = None
    if p.identity_teacher:
        out["given_identity"] = given_identity_runs(splits, p, seed, emotion_state, norm, aug,
                                                    stage_args, log)
        out["wall_s"]["given_identity"] = sum(r["wall_s"] for r in
                                              out["given_identity"].values())
        predictions.update({k: v.pop("test_predictions")
                            for k, v in out["given_identity"].items()})

    # 6. the paper's transfer baseline: the identity feature alone into a linear SVM
    out["transfer_svm"] = transfer_svm_runs(splits, identity_state, num_identities,
                                            identity["normalizer"], p, stage_args["log"])
    for name, r in out["transfer_svm"].items():
        if isinstance(r, dict):
            predictions[f"svm_{name}"] = r.pop("test_predictions")

    out["test_set"] = test
    out["test_labels"] = None if test is None else test.labels
    out["test_predictions"] = {k: v for k, v in predictions.items() if v is not None}
    return out


GIVEN_IDENTITY = {"tfe_teacher": "the teacher's descriptor of the same image",
                  "tfe_teacher_other_sequences": "the person's mean teacher descriptor from "
                                                 "other sequences"}


def given_identity_runs(splits, p: Protocol, seed, emotion_state, norm, aug, stage_args,
                        log=print):
    """Stage 5: TFE (models.GivenIdentityTFE) over a frozen teacher descriptor, trained like
    the joint stage from the same baseline; the other-sequences control where the data
    have sequences (every split's people have their own recordings: nothing crosses)."""
    from .teacher_features import with_teacher_side

    classes = splits["train"].classes
    results = {}
    for name, other in (("tfe_teacher", False), ("tfe_teacher_other_sequences", True)):
        sets, missing = {}, 0
        for k in ("train", "val", "test"):
            if splits.get(k) is None:
                sets[k] = None
                continue
            sets[k], n = with_teacher_side(splits[k], p.identity_teacher, other)
            if sets[k] is None:
                break
            missing += n
        if any(sets.get(k) is None for k in ("train", "val")):
            continue  # no sequences in these data: the control does not apply
        if missing:
            log(f"{name}: {missing} images have no descriptor ({GIVEN_IDENTITY[name]}): "
                "a zero vector stands in")
        tfe_random.manual_seed(seed + 4)
        emo = models.ARCHITECTURES[p.emotion_model](num_classes=len(classes))
        emo.load_state_dict(emotion_state)
        model = models.GivenIdentityTFE(emo, sets["train"].side.shape[1], len(classes))
        model.to(p.device)
        opt = _sgd([{"params": model.parameter_groups()[1], "lr": p.lr_joint}], p)
        res = train_stage(name, model, opt, optim.CosineLR(opt, p.epochs_joint), sets["train"],
                          sets["val"], sets["test"], norm, epochs=p.epochs_joint,
                          augmenter=aug, save_model=lambda path, m: None, **stage_args)
        results[name] = {**_summary("tfe" + p.emotion_model[len("resnet"):] + "+teacher", res),
                         "identity_feature": GIVEN_IDENTITY[name],
                         "images_without_descriptor": missing,
                         "test_predictions": res.test_predictions}
    return results


def initial_emotion_weights(path, resnet, classes):
    """The weights of an emotion model file (``--init-emotion``) for ``resnet``: the same
    architecture; a classifier for other classes (another data set) starts afresh."""
    from .modelfile import LoadedModel

    loaded = LoadedModel(path)  # ModelFileError (an InputError) names a refused file
    arch = {k: v for k, v in loaded.model.arch.items() if k != "num_classes"}
    want = {k: v for k, v in resnet.arch.items() if k != "num_classes"}
    if arch != want:
        raise InputError(f"{path}: --init-emotion needs a {want.get('name')} emotion model, "
                         f"this file holds {loaded.model.arch.get('name')}")
    weights = loaded.model.state_dict()
    if list(loaded.classes) != list(classes):
        own = resnet.state_dict()
        weights = {k: (own[k] if k.startswith("fc.") else v) for k, v in weights.items()}
    return weights


def _summary(model_name, res):
    return {"model": model_name, "test_acc": res.test_acc, "val_acc": res.val_acc,
            "best_epoch": res.best_epoch, "history": res.history, "wall_s": res.wall_s}


def aggregate(per_split, key_path):
    """Mean, std and per-split list of test accuracy at ``key_path`` (e.g. ("baseline",))."""
    values = []
    for r in per_split:
        node = r
        for k in key_path:
            node = None if node is None else node.get(k)
        values.append(None if node is None else node.get("test_acc"))
    got = [v for v in values if v is not None]
    if not got:
        return None
    return {"test_acc": float(np.mean(got)),
            "test_acc_std": float(np.std(got, ddof=1)) if len(got) > 1 else None,
            "per_fold": values}


def fold_hash(split_descriptions) -> str:
    """sha256 over the sorted per-split subject lists: identifies the exact partition."""
    blob = json.dumps(split_descriptions, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def describe_split(splits):
    """The people of each split (what makes two runs' data the same)."""
    return {k: sorted(set(map(str, v.subjects))) for k, v in splits.items() if v is not None}


def results_document(per_split, protocol: Protocol, *, synthetic, classes, frames, fold_kind,
                     fold_hash_value, identity_data, wall_total):
    """The results.json contract of the design notes (accuracies in percent)."""
    def stage_wall(key):
        vals = [r["wall_s"].get(key) for r in per_split if r["wall_s"].get(key) is not None]
        return float(sum(vals)) if vals else None

    ident = [r["identity"] for r in per_split]
    baseline = aggregate(per_split, ("baseline",))
    tfe_jl = aggregate(per_split, ("tfe_jl",))
    controls = None
    if all(r.get("controls") for r in per_split):
        names = {"baseline_more_epochs": protocol.emotion_model,
                 "tfe_random_identity": "tfe" + protocol.emotion_model[len("resnet"):]}
        controls = {}
        for key, model in names.items():
            agg = aggregate(per_split, ("controls", key))
            controls[key] = None if agg is None else {"model": model, **agg}
    given = None
    if all(r.get("given_identity") for r in per_split):
        given = {}
        for key in GIVEN_IDENTITY:
            agg = aggregate(per_split, ("given_identity", key))
            if agg is not None:
                given[key] = {"model": "tfe" + protocol.emotion_model[len("resnet"):] +
                              "+teacher", "identity_feature": GIVEN_IDENTITY[key], **agg}
    doc = {
        "synthetic": synthetic,
        "comparison": comparison_document(per_split, classes),
        "transfer_svm": transfer_document(per_split),
        "protocol": {
            "dataset": protocol.dataset, "classes": list(classes), "frames": frames,
            "folds": len(per_split), "fold_kind": fold_kind, "fold_hash": fold_hash_value,
            "selection": "validation", "seed": protocol.seeds[0], "seeds": protocol.seeds,
            "epochs": {"identity": protocol.epochs_identity, "emotion": protocol.epochs_emotion,
                       "joint": protocol.epochs_joint},
            "batch_size": protocol.batch_size,
            "lr": {"identity": protocol.lr_identity, "emotion": protocol.lr_emotion,
                   "joint": protocol.lr_joint, "joint_identity_branch": protocol.lr_joint_identity},
            "momentum": protocol.momentum, "weight_decay": protocol.weight_decay,
            "augment": protocol.augment, "identity_data": identity_data,
            "identity_teacher": protocol.identity_teacher and os.path.abspath(
                protocol.identity_teacher),
            "distill_weight": protocol.identity_teacher and (protocol.distill_weight or 1.0),
            "init_emotion": protocol.init_emotion and os.path.abspath(protocol.init_emotion),
            "device": str(protocol.device), "cuda_graph": protocol.cuda_graph,
            # CPU threads of this run; the results do not depend on it (fixed reductions).
            "threads": get_num_threads(),
            # What the float32 roundings do depend on: the CPU kernel level and whether the
            # 3x3 convolutions of training take Winograd (csrc/conv/winograd_train.cpp).
            "cpu_kernels": {"gemm": _native.gemm_kernel(),
                            "conv_winograd": os.environ.get("TFE_CONV_WINOGRAD", "0")},
            "tfe_version": __version__,
        },
        "baseline": None if baseline is None else {"model": protocol.emotion_model, **baseline},
        "tfe_jl": None if tfe_jl is None else {
            "model": "tfe" + protocol.emotion_model[len("resnet"):], **tfe_jl},
        "controls": controls,
        "given_identity": given,
        "identity": {"model": "deepid",
                     "val_acc": _mean([i["val_acc"] for i in ident]),
                     "verification_acc": _mean([i.get("verification_acc") for i in ident])},
        "wall_s": {"identity": stage_wall("identity"), "emotion": stage_wall("emotion"),
                   "joint": stage_wall("joint"), "controls": stage_wall("controls"),
                   "given_identity": stage_wall("given_identity"), "total": wall_total},
    }
    doc["identity_verdict"] = identity_verdict(doc)
    doc["plateau"] = stage_plateaus(per_split)
    return doc


def transfer_document(per_split):
    """The transfer baseline over splits: per identity feature its test accuracy (mean,
    std, per split) and the C chosen on each split's validation; or why it did not run."""
    runs = [r.get("transfer_svm") or {} for r in per_split]
    if any("skipped" in r for r in runs):
        return {"skipped": next(r["skipped"] for r in runs if "skipped" in r)}
    names = [n for n in runs[0] if all(n in r for r in runs)] if runs else []
    if not names:
        return None
    no_test = {"test_acc": None, "test_acc_std": None, "per_fold": [None] * len(runs)}
    return {n: {**(aggregate(per_split, ("transfer_svm", n)) or no_test),
                "val_acc": [r[n]["val_acc"] for r in runs], "C": [r[n]["C"] for r in runs],
                "classifier": "linear SVM (LinearSVC, standardised features, C chosen on "
                "validation)"} for n in names}


def _mean(values):
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def now():
    return time.time()
