"""Checks of the command-line values, made when the arguments are parsed, before anything
is read or trained: each bad value is one ``prog: error: argument --name: ...`` line from
argparse and exit status 2.

argparse ``type=`` functions check one value; ``check_train_args`` checks the values
against each other and the output folder.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile

__all__ = ["at_least", "check_output_folder", "check_train_args", "device",
           "learning_rate", "seed", "threads"]

MAX_SEED = 2**32 - 1  # seeds are mixed into 64-bit generator states; keep them 32-bit


def _whole(text) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def at_least(minimum: int, why: str = ""):
    """An argparse type: a whole number >= minimum."""
    def parse(text):
        value = _whole(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{why}, got {value}")
        return value
    return parse


def learning_rate(text) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def seed(text) -> int:
    value = _whole(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seeds must be between 0 and {MAX_SEED}, got {value}")
    return value


def threads(text) -> int:
    from . import _native

    cap = _native.MAX_NUM_THREADS  # the engine's limit (csrc/ops/cpu_kernels.h: kMaxThreads)
    value = _whole(text)
    if not 1 <= value <= cap:
        raise argparse.ArgumentTypeError(f"must be between 1 and {cap} (each thread is an OS "
                                         f"thread with its own stack), got {value}")
    return value


def device(text):
    """A tfe.Device (syntax only; whether the device exists is checked after parsing)."""
    from . import _native

    try:
        return _native.Device(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: expected cpu, cuda or cuda:N") from None


def check_output_folder(path) -> str | None:
    """Why ``path`` cannot be the output folder (it, or the folder it would be created in,
    is a file or is not writable), or None. Nothing is created or left behind."""
    path = os.path.abspath(path)
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        if os.path.islink(existing) and not os.path.exists(existing):
            return f"{existing} is a broken symbolic link"
        if existing == path:
            return f"{path} is a file, not a folder"
        return f"cannot create {path}: {existing} is a file, not a folder"
    try:  # an unnamed temporary file: the only reliable test (root ignores permission bits)
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        what = "" if existing == path else f"cannot create {path}: "
        return f"{what}{existing} is not writable ({e.strerror or e})"
    return None


def check_train_args(parser, args):
    """Checks between values, and the output folder; parser.error on the first problem."""
    if args.max_folds is not None and args.max_folds > args.folds:
        parser.error(f"argument --max-folds: {args.max_folds} is more than --folds "
                     f"{args.folds}")
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        twice = next(s for s in args.seeds if args.seeds.count(s) > 1)
        parser.error(f"argument --seeds: seed {twice} is given twice (each seed is one run "
                     "in its own folder)")
    if args.people is not None and args.people[3] < 2:
        parser.error("argument --people: the identity set needs >= 2 people (DeepID learns "
                     f"to tell them apart), got {args.people[3]}")
    if args.per_person is not None and args.per_person[1] < 2:
        parser.error("argument --per-person: the identity set needs >= 2 images per person "
                     f"(one is held out for validation), got {args.per_person[1]}")
    if args.epochs_emotion == 0 and not args.init_emotion:
        parser.error("argument --epochs-emotion: 0 needs --init-emotion (the emotion "
                     "network is then the given model, scored as it is)")
    if args.init_emotion and not os.path.isfile(args.init_emotion):
        parser.error(f"argument --init-emotion: {args.init_emotion}: no such file")
    if args.identity_teacher and not os.path.isdir(args.identity_teacher):
        parser.error(f"argument --identity-teacher: {args.identity_teacher}: no such folder "
                     "(a teacher cache filled by tfe-embed)")
    for name in ("distill_weight", "distill_dir"):
        if getattr(args, name) is not None and not args.identity_teacher:
            parser.error(f"argument --{name.replace('_', '-')}: needs --identity-teacher")
    problem = check_output_folder(args.out)
    if problem:
        parser.error(f"argument --out: {problem}")
