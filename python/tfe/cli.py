"""Console commands: ``tfe-train`` (the paper's pipeline) and ``tfe-predict``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import fields

from . import __version__
from . import cli_inputs as checks
from .checkpoint import remove_stale_temporaries
from .errors import InputError, one_line_errors
from .comparison import disagreements, write_predictions
from .pipeline import Protocol, describe_split, fold_hash, results_document, run_split
from .verdict import verdict_lines

PAPER = {"ckplus": ("ResNet12", 97.56, 99.31), "ferplus": ("ResNet18", 83.09, 84.29)}


def _train_parser():
    p = argparse.ArgumentParser(
        prog="tfe-train", usage="%(prog)s [options] (--help lists them)",
        description="Identity and emotion joint learning: DeepID + ResNet pre-training, "
                    "TFE joint fine-tuning, controls; prints the paper-style table and "
                    "writes results.json. With no arguments: the built-in synthetic faces.")
    p.add_argument("--dataset", default="synthetic", choices=["synthetic", "ckplus", "ferplus"],
                   help="expression data set (default: synthetic, no download needed)")
    p.add_argument("--data-dir", help="folder of the expression data set (ckplus: the official "
                   "layout or a folder-per-emotion copy such as CK+48; ferplus: FERPlus's "
                   "FER2013Train/Valid/Test folders or fer2013.csv + fer2013new.csv)")
    p.add_argument("--label-mode", default="majority",
                   choices=["majority", "probability", "crossentropy"],
                   help="ferplus: training targets from the crowd votes (default majority)")
    p.add_argument("--identity-dir", nargs="+", metavar="DIR",
                   help="folder-per-person identity data for DeepID (several combine); "
                   "real data sets without it use the built-in synthetic identity set")
    p.add_argument("--folds", type=checks.at_least(3, " (test, validation and training folds)"),
                   default=10, help="k of the k-fold protocol (default 10)")
    p.add_argument("--max-folds", type=checks.at_least(1), default=None,
                   help="run only the first N folds (the results say how many ran)")
    p.add_argument("--leaky-folds", action="store_true",
                   help="image-level folds: the same person may be in training and test "
                   "(the leaky protocol, labelled as such; default: subject-independent)")
    p.add_argument("--out", default="tfe-run", help="output folder (default: ./tfe-run)")
    p.add_argument("--seeds", type=checks.seed, nargs="+", default=None,
                   help="one pipeline run per seed (its own people and initialisation); "
                   "mean ± std over them (default: 0 1)")
    p.add_argument("--epochs-identity", type=checks.at_least(1))
    p.add_argument("--epochs-emotion", type=checks.at_least(0),
                   help="0 with --init-emotion: the given model is the baseline as it is")
    p.add_argument("--epochs-joint", type=checks.at_least(1))
    p.add_argument("--batch-size", type=checks.at_least(1))
    p.add_argument("--lr-identity", type=checks.learning_rate)
    p.add_argument("--lr-emotion", type=checks.learning_rate)
    p.add_argument("--lr-joint", type=checks.learning_rate)
    p.add_argument("--lr-joint-identity", type=checks.learning_rate,
                   help="learning rate of the DeepID branch during joint fine-tuning")
    p.add_argument("--emotion-model", choices=["resnet12", "resnet18"])
    p.add_argument("--init-emotion", metavar="MODEL", help="a model file of the emotion "
                   "network (e.g. a FER+ run's split/emotion.safetensors) to start from "
                   "instead of random weights; other classes get a fresh classifier")
    p.add_argument("--identity-teacher", metavar="CACHE", help="a teacher cache filled by "
                   "tfe-embed: DeepID is also distilled from the teacher's descriptors, on the "
                   "identity images and (ferplus) the training split")
    p.add_argument("--distill-dir", nargs="+", metavar="DIR", help="more faces for the "
                   "distillation, without labels (every image under the folders), e.g. "
                   "FER+'s FER2013Train for a CK+ run; never validation or test images")
    p.add_argument("--distill-weight", type=checks.learning_rate,
                   help="weight of the distillation (cosine) loss against the identity "
                   "cross-entropy (default 1)")
    p.add_argument("--no-augment", action="store_true", help="no flip/shift/rotation")
    p.add_argument("--no-controls", action="store_true",
                   help="skip the two control runs (more-epochs baseline, random identity)")
    p.add_argument("--people", type=checks.at_least(1), nargs=4,
                   metavar=("TRAIN", "VAL", "TEST", "IDENTITY"), default=None, help="synthetic: people in the expression train, validation "
                   "and test splits and in the identity set (default 48 16 40 300)")
    p.add_argument("--per-person", type=checks.at_least(1), nargs=2,
                   metavar=("EXPRESSION", "IDENTITY"), default=None, help="synthetic: images per person and class in the "
                   "expression splits, and per person in the identity set (default 4 15)")
    p.add_argument("--device", type=checks.device,
                   help="cpu, cuda or cuda:N: where every stage trains (default cpu)")
    p.add_argument("--no-cuda-graph", action="store_true",
                   help="cuda: launch every kernel of a step from Python instead of replaying "
                   "the recorded step (slower; for debugging)")
    p.add_argument("--threads", type=checks.threads, default=None,
                   help="CPU threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="one log line per epoch instead "
                   "of progress bars")
    p.add_argument("--no-resume", action="store_true",
                   help="start afresh even if the output folder holds a checkpoint")
    return p


def _protocol(args) -> Protocol:
    p = Protocol.for_dataset(args.dataset)
    for f in fields(Protocol):
        v = getattr(args, f.name, None)
        if v is not None and f.name not in ("dataset", "seeds"):
            setattr(p, f.name, v)
    if args.seeds:
        p.seeds = args.seeds
    p.augment = not args.no_augment
    p.cuda_graph = not args.no_cuda_graph
    p.controls = not args.no_controls
    for name in ("epochs_identity", "epochs_joint", "batch_size"):
        if getattr(p, name) < 1:
            raise SystemExit(f"tfe-train: error: --{name.replace('_', '-')} must be >= 1")
    return p


# The default run's faces: 32x32 (a ResNet12 step costs under half of one at 48x48, which
# is what lets three seeds run in about 5 minutes on two cores) at half the generator's
# pose and lighting range (aligned lab crops, as CK+'s).
SYNTHETIC_SIZE, SYNTHETIC_JITTER = 32, 0.5


def _synthetic_faces(seed):
    from .data.synthetic import SyntheticFaces

    return SyntheticFaces(seed=seed, size=SYNTHETIC_SIZE, jitter=SYNTHETIC_JITTER)


def _synthetic_splits(seed, people, per_person, identity=True):
    kwargs = {"identity": identity}
    if people is not None:
        if min(people) < 1:
            raise SystemExit("tfe-train: error: --people counts must be >= 1")
        kwargs.update(zip(("train_people", "val_people", "test_people", "identity_people"),
                          people))
    if per_person is not None:
        if per_person[0] < 1 or per_person[1] < 2:
            raise SystemExit("tfe-train: error: --per-person needs >= 1 expression image and "
                             ">= 2 identity images per person (one is held out)")
        kwargs.update(per_person_per_class=per_person[0], identity_per_person=per_person[1])
    return _synthetic_faces(seed).default_splits(**kwargs)


def _check_device(device):
    from . import cuda

    if not device.is_cuda:
        return
    if not cuda.is_available():
        raise SystemExit(f"tfe-train: error: --device {device}: CUDA is not available "
                         f"({cuda.unavailable_reason()})")
    if device.index >= cuda.device_count():
        raise SystemExit(f"tfe-train: error: --device {device}: only {cuda.device_count()} "
                         "CUDA device(s)")


def train_main(argv=None):
    parser = _train_parser()
    args = parser.parse_args(argv)
    checks.check_train_args(parser, args)
    with one_line_errors("tfe-train"):  # InputError (ResumeError too) and OSError
        return _train(args)


def _train(args):
    remove_stale_temporaries(args.out)
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit("tfe-train: error: --threads must be >= 1")
        from . import set_num_threads

        set_num_threads(args.threads)
    protocol = _protocol(args)
    _check_device(protocol.device)
    if args.dataset != "synthetic":
        return _real_main(args, protocol)
    if args.data_dir or args.identity_dir:
        raise SystemExit("tfe-train: error: --data-dir/--identity-dir need a real data set: "
                         "--dataset ckplus or ferplus")
    from .pipeline import train_identity

    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    progress = not args.no_progress and sys.stderr.isatty()
    per_seed, descriptions, classes, identity = [], [], None, None
    for seed in protocol.seeds:
        splits = _synthetic_splits(seed, args.people, args.per_person, identity=identity is None)
        classes = splits["train"].classes
        print(f"[seed {seed}] synthetic data: {len(splits['train'])} train / "
              f"{len(splits['val'])} val / {len(splits['test'])} test expression images "
              f"(disjoint people)", flush=True)
        if identity is None:
            # One identity network for every seed, as the paper trains DeepID once: its
            # people are the first seed's identity set, drawn apart from every expression
            # split's people (each seed's generator draws its own people).
            identity_set = splits["identity"]
            print(f"identity set: {len(identity_set)} images of {identity_set.num_classes} "
                  f"synthetic people (seed {seed}), shared by every seed", flush=True)
            identity = train_identity(identity_set, protocol, seed,
                                      os.path.join(args.out, "identity"), progress,
                                      resume=not args.no_resume, label="synthetic")
        splits["identity"] = identity_set
        descriptions.append(describe_split(splits))
        run = run_split(splits, protocol, seed, os.path.join(args.out, f"seed{seed}"),
                        progress=progress, resume=not args.no_resume, identity=identity,
                        label=f"synthetic seed {seed}")
        per_seed.append(run)
        if seed == protocol.seeds[0]:
            splits_test_people = list(splits["test"].people())
    doc = results_document(per_seed, protocol, synthetic=True, classes=classes,
                           frames="synthetic", fold_kind="seed",
                           fold_hash_value=fold_hash(descriptions),
                           identity_data=[f"synthetic:{identity_set.num_classes} people"],
                           wall_total=time.time() - start)
    doc["identity"] = {**identity["summary"], "people": identity_set.num_classes}
    doc["identity"].pop("history", None)
    doc["wall_s"]["identity"] = identity["wall_s"]
    _write_outputs(args.out, doc, per_seed, classes)
    _plot_synthetic_people(os.path.join(args.out, "synthetic_people.png"), protocol.seeds[0],
                           splits_test_people)
    print(format_table(doc))
    return 0


def _plot_synthetic_people(path, seed, people, count=6):
    """What the synthetic data looks like: test people of the first seed, one row each,
    across the 8 expressions (clean renders at full intensity), labelled with their resting
    look, the trait that makes some neutral faces look like an expression. The rows are the
    first test person of each resting look, in the generator's order, up to ``count``."""
    try:
        from .plots import plot_people
    except ImportError:  # matplotlib is optional for the numbers themselves
        return
    from .data.synthetic import CLASSES, RESTING_LOOKS

    gen = _synthetic_faces(seed)
    first = {}
    for name in people:
        person = gen.identity(int(name[len("synth"):]))
        first.setdefault(person.resting, person)
    chosen = [first[look] for look in RESTING_LOOKS if look in first][:count]
    labels = [f"{p.name}\n{p.resting if p.resting != 'none' else 'no'} resting look"
              for p in chosen]
    ks = [p.index for p in chosen]
    plot_people(gen.expression_grid(ks), list(CLASSES), labels, path,
                f"SYNTHETIC DATA: test people of seed {seed}, one row each")


def _real_main(args, protocol):
    """A real data set: subject-independent k-fold, identity stage shared by all folds."""
    from .checkpoint import atomic_write_json
    from .data.ckplus import frames_description, load_ckplus
    from .data.folders import load_person_folders
    from .data.folds import fold_list, hash_of, make_folds
    from .pipeline import train_identity

    if not args.data_dir:
        raise SystemExit(f"tfe-train: error: --dataset {args.dataset} needs --data-dir")
    if args.folds < 3:
        raise SystemExit("tfe-train: error: --folds must be >= 3")
    identity_set = _identity_data(args, load_person_folders)
    if args.dataset == "ferplus":
        return _ferplus_main(args, protocol, identity_set)
    data = load_ckplus(args.data_dir)
    seed = protocol.seeds[0]
    kind = "image" if args.leaky_folds else "subject"
    try:
        folds = make_folds(data.subjects, data.labels, args.folds, seed, kind)
    except ValueError as e:
        raise InputError(f"{args.data_dir}: {e}") from None
    os.makedirs(args.out, exist_ok=True)
    description = fold_list(folds, data.subjects)
    atomic_write_json(os.path.join(args.out, "folds.json"),
                      {"kind": kind, "k": args.folds, "seed": seed, "folds": description})
    leak = " (LEAKY: image-level folds)" if kind == "image" else ""
    print(f"{args.dataset}: {len(data)} images, {len(data.classes)} classes "
          f"({', '.join(data.classes)}), {len(set(data.subjects))} people; {args.folds} "
          f"{kind} folds{leak}; identity data: {len(identity_set)} images of "
          f"{identity_set.num_classes} people", flush=True)
    start = time.time()
    progress = not args.no_progress and sys.stderr.isatty()
    identity = train_identity(identity_set, protocol, seed, os.path.join(args.out, "identity"),
                              progress, resume=not args.no_resume, label=f"{args.dataset}",
                              distill_extra=_distill_faces(args, [data]))
    per_fold = []
    for f in folds[: args.max_folds or len(folds)]:
        splits = {"train": data.subset(f.train), "val": data.subset(f.val),
                  "test": data.subset(f.test)}
        per_fold.append(run_split(splits, protocol, seed,
                                  os.path.join(args.out, f"fold{f.index}"), progress=progress,
                                  resume=not args.no_resume, identity=identity,
                                  label=f"{args.dataset} fold {f.index}"))
    doc = results_document(per_fold, protocol, synthetic=False, classes=data.classes,
                           frames=frames_description(args.data_dir), fold_kind=kind,
                           fold_hash_value=hash_of(description),
                           identity_data=_identity_description(args, identity_set),
                           wall_total=time.time() - start)
    doc["protocol"]["folds"] = args.folds
    doc["protocol"]["folds_run"] = len(per_fold)
    doc["protocol"]["data_dir"] = os.path.abspath(args.data_dir)
    doc["identity"] = {**identity["summary"], "people": identity_set.num_classes}
    doc["identity"].pop("history", None)
    doc["wall_s"]["identity"] = identity["wall_s"]
    _write_outputs(args.out, doc, per_fold, data.classes)
    print(format_table(doc))
    return 0


def _identity_data(args, load_person_folders):
    """The folder-per-person sets given with --identity-dir, else the built-in synthetic
    identity set (said plainly, and recorded as such in results.json)."""
    if args.identity_dir:
        return load_person_folders(args.identity_dir)
    from .data.synthetic import SyntheticFaces

    people = 100
    print(f"no --identity-dir given: DeepID is pre-trained on the built-in SYNTHETIC identity "
          f"set ({people} people x 30 images); give folder-per-person face sets for real "
          "identity features", flush=True)
    return SyntheticFaces(seed=1_000_003).identity_set(people, 30)


def _distill_faces(args, held_out=()):
    """The --distill-dir faces as one unlabelled set (a list of zero or one ImageSet); an
    image file that is also in one of the ``held_out`` sets (validation or test images)
    is refused."""
    if not args.distill_dir:
        return []
    from .data.folders import load_unlabelled_faces

    faces = load_unlabelled_faces(args.distill_dir)
    mine = {os.path.realpath(p): p for p in faces.sources}
    for s in held_out:
        for p in [] if s is None or s.sources is None else s.sources:
            if os.path.realpath(p) in mine:
                raise InputError(f"{mine[os.path.realpath(p)]}: --distill-dir holds an image "
                                 f"of the {s.name} set; distillation may only see training "
                                 "images")
    return [faces]


def _identity_description(args, identity_set):
    if args.identity_dir:
        return [os.path.abspath(d) for d in args.identity_dir]
    return [f"synthetic:{identity_set.num_classes} people (built-in generator)"]


def _ferplus_main(args, protocol, identity_set):
    """FER+: train / PublicTest (validation, selects) / PrivateTest (test, when present)."""
    from .data.ferplus import load_ferplus
    from .data.folds import hash_of
    from .pipeline import train_identity

    splits = load_ferplus(args.data_dir, label_mode=args.label_mode)
    if splits["train"] is None or splits["val"] is None:
        raise SystemExit(f"tfe-train: error: {args.data_dir}: FER+ needs the training and "
                         "validation (PublicTest) splits")
    os.makedirs(args.out, exist_ok=True)
    test = splits["test"]
    print(f"ferplus: {len(splits['train'])} train / {len(splits['val'])} validation / "
          f"{'no' if test is None else len(test)} test images ({args.label_mode} labels); "
          f"identity data: {len(identity_set)} images of {identity_set.num_classes} people",
          flush=True)
    start = time.time()
    progress = not args.no_progress and sys.stderr.isatty()
    identity = train_identity(identity_set, protocol, protocol.seeds[0],
                              os.path.join(args.out, "identity"), progress,
                              resume=not args.no_resume, label="ferplus",
                              distill_extra=[splits["train"], *_distill_faces(
                                  args, [splits["val"], test])])
    run = run_split(splits, protocol, protocol.seeds[0], os.path.join(args.out, "split"),
                    progress=progress, resume=not args.no_resume, identity=identity,
                    label="ferplus")
    names = {k: None if v is None else len(v) for k, v in splits.items()}
    doc = results_document([run], protocol, synthetic=False, classes=splits["train"].classes,
                           frames=f"FER2013 48x48, FERPlus votes, {args.label_mode} labels",
                           fold_kind="split", fold_hash_value=hash_of(names),
                           identity_data=_identity_description(args, identity_set),
                           wall_total=time.time() - start)
    doc["protocol"]["splits"] = {"train": "FER2013Train", "validation": "FER2013Valid "
                                 "(PublicTest)", "test": "FER2013Test (PrivateTest)"
                                 if test is not None else None}
    doc["protocol"]["data_dir"] = os.path.abspath(args.data_dir)
    doc["identity"] = {**identity["summary"], "people": identity_set.num_classes}
    doc["identity"].pop("history", None)
    doc["wall_s"]["identity"] = identity["wall_s"]
    if test is None:  # selection still on validation; say plainly that no test score exists
        doc["validation_only"] = {"baseline_val_acc": run["baseline"]["val_acc"],
                                  "tfe_jl_val_acc": run["tfe_jl"]["val_acc"]}
        for name, control in (run.get("controls") or {}).items():
            doc["validation_only"][f"{name}_val_acc"] = control["val_acc"]
    _write_outputs(args.out, doc, [run], splits["train"].classes)
    print(format_table(doc))
    return 0


def _write_outputs(out, doc, per_split, classes):
    from .checkpoint import atomic_write_json

    atomic_write_json(os.path.join(out, "results.json"), doc)
    metrics = []
    for i, r in enumerate(per_split):
        entry = {"split": i, "identity": r["identity"]["history"],
                 "emotion": r["baseline"]["history"], "joint": r["tfe_jl"]["history"]}
        if r.get("controls"):
            entry.update({k: v["history"] for k, v in r["controls"].items()})
        metrics.append(entry)
    atomic_write_json(os.path.join(out, "metrics.json"), metrics)
    write_predictions(os.path.join(out, "predictions.npz"), per_split)
    try:
        from .plots import plot_confusion, plot_contact_sheet, plot_curves
    except ImportError:  # matplotlib is optional for the numbers themselves
        return
    plot_curves(per_split[0], os.path.join(out, "curves.png"), synthetic=doc["synthetic"])
    plot_confusion(per_split, classes, os.path.join(out, "confusion.png"),
                   synthetic=doc["synthetic"])
    fixed, broken = disagreements(per_split)
    if fixed or broken:
        plot_contact_sheet(fixed, broken, classes, os.path.join(out, "contact_sheet.png"),
                           synthetic=doc["synthetic"])


def format_table(doc) -> str:
    """The paper-style comparison, labelled synthetic where it is."""
    proto = doc["protocol"]
    tag = " [SYNTHETIC DATA]" if doc["synthetic"] else ""
    n = proto.get("folds_run", proto["folds"])
    unit = "seeds" if proto["fold_kind"] == "seed" else f"{proto['fold_kind']} folds"
    if proto.get("folds_run", n) != proto["folds"]:
        unit += f" (of {proto['folds']})"
    if proto["fold_kind"] == "image":
        unit += " [LEAKY: a person can be in training and test]"
    lines = [f"tfe {proto['tfe_version']}: {proto['dataset']}{tag}, {len(proto['classes'])} "
             f"classes, {n} {unit}; test accuracy at the epoch chosen on validation"]
    lines.append(f"{'':28s}{'model':14s}{'test acc %':>16s}   per "
                 f"{'seed' if proto['fold_kind'] == 'seed' else 'fold'}")

    def row(label, entry):
        if entry is None:
            return f"{label:28s}{'-':14s}{'n/a':>16s}"
        per = ", ".join("-" if v is None else f"{v:.1f}" for v in entry["per_fold"])
        std = entry["test_acc_std"]
        std = "n/a " if std is None else f"{std:<4.2f}"
        return f"{label:28s}{entry['model']:14s}{entry['test_acc']:>9.2f} ± {std}   [{per}]"

    lines.append(row("baseline (ResNet)", doc["baseline"]))
    lines.append(row("TFE-JL", doc["tfe_jl"]))
    controls = doc.get("controls") or {}
    if controls:
        lines.append(row("control: baseline +epochs", controls.get("baseline_more_epochs")))
        lines.append(row("control: random identity", controls.get("tfe_random_identity")))
    given = doc.get("given_identity") or {}
    if given.get("tfe_teacher"):
        lines.append(row("TFE, teacher descriptor", given["tfe_teacher"]))
    if given.get("tfe_teacher_other_sequences"):
        lines.append(row("control: other sequences", given["tfe_teacher_other_sequences"]))
    transfer = doc.get("transfer_svm") or {}
    for name, label in (("deepid", "transfer: DeepID + SVM"), ("teacher", "transfer: teacher + SVM")):
        if transfer.get(name) and transfer[name]["test_acc"] is not None:
            lines.append(row(label, {**transfer[name], "model": "linear SVM"}))
    if transfer.get("skipped"):
        lines.append(f"transfer baseline (identity feature + linear SVM) not run: "
                     f"{transfer['skipped']}")
    paired = (doc.get("comparison") or {}).get("tfe_jl_against") or {}
    if paired:
        lines.append("TFE-JL against each model on the same test images (only TFE-JL right / "
                     "only the other right, McNemar p): " + "; ".join(
                         f"{k} {v['only_tfe_jl_right']}/{v['only_other_right']}, "
                         f"p {v['mcnemar_p']:.2g}" for k, v in paired.items()))
    if doc.get("validation_only"):
        v = doc["validation_only"]
        line = (f"no test split: validation (selection) accuracy baseline "
                f"{v['baseline_val_acc']:.2f} %, TFE-JL {v['tfe_jl_val_acc']:.2f} %")
        if v.get("baseline_more_epochs_val_acc") is not None:
            line += (f"; controls: baseline +epochs {v['baseline_more_epochs_val_acc']:.2f} %, "
                     f"random identity {v['tfe_random_identity_val_acc']:.2f} %")
        lines.append(line)
    lines += verdict_lines(doc, "seed" if proto["fold_kind"] == "seed" else "fold")
    ident = doc["identity"]
    if ident.get("val_acc") is not None:
        line = f"identity net (DeepID) validation accuracy: {ident['val_acc']:.1f} %"
        if ident.get("verification_acc") is not None:
            line += (f"; face verification on held-out people (cosine, LFW protocol): "
                     f"{ident['verification_acc']:.1f} %")
        if ident.get("teacher_verification_acc") is not None:
            line += f" (the teacher: {ident['teacher_verification_acc']:.1f} %)"
        lines.append(line)
    paper = PAPER.get(proto["dataset"])
    if paper:
        lines.append(f"paper ({proto['dataset']}): {paper[0]} {paper[1]:.2f} %, "
                     f"TFE-JL {paper[2]:.2f} %")
    w = doc["wall_s"]
    lines.append("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in w.items() if v is not None))
    return "\n".join(lines)


# ---- tfe-predict: predict_cli.py ------------------------------------------------------------
def predict_main(argv=None):
    from .predict_cli import main as predict

    return predict(argv)


def main():
    print(f"tfe {__version__}: use tfe-train or tfe-predict")
