"""Resume files: everything a training stage needs to continue exactly where it stopped.

A resume file is a tfe safetensors file (``checkpoint.save``) written after every epoch:

* tensors ``model.<name>`` (weights and buffers), ``momentum.<i>`` (the optimizer's
  momentum buffers, by parameter index) and, when the best epoch so far is not the last
  one, ``best.<name>`` (the weights that the stage will end with unless a later epoch beats
  them);
* metadata ``resume``: the epoch, the metrics so far (``history``), the best-epoch
  bookkeeping, the learning rates, the dropout layers' call counters (each call draws its
  mask from (seed, call count)) and the fingerprint of the run's settings;
* metadata ``resume_sha256``: SHA-256 over all of the above, so a truncated, bit-flipped or
  edited file is refused rather than continued.

The rest of what the next step depends on is a function of (seed, epoch, batch index) and
the settings alone: the shuffle order (data/loader.py), the augmentation
(data/transforms.py) and the learning rate (the schedule's ``set_epoch``). The kernels give
the same bits for any thread count, so a run may resume with another ``--threads``.

Every refusal is a ``ResumeError``: one line naming the file and saying that ``--no-resume``
starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import numbers

import numpy as np

from . import checkpoint
from .errors import InputError
from .nn import Dropout


class ResumeError(InputError):
    """A resume file that cannot be continued (the message is one line naming it)."""


def _refuse(path, why):
    return ResumeError(f"{path}: {why}; --no-resume starts afresh")


def save(path, model, optimizer, *, epoch, history, best, best_state, fingerprint):
    """Writes the resume file of a stage after ``epoch`` epochs; ``best_state`` holds the
    weights of epoch ``best["epoch"]`` (not stored when that is ``epoch`` itself)."""
    opt = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"momentum.{i}": v for i, v in opt["momentum"].items()})
    if best["epoch"] != epoch:
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    state = {"epoch": epoch, "history": history, "best": best, "lr": opt["lr"],
             "dropout_calls": _dropout_calls(model), "fingerprint": fingerprint}
    checkpoint.save(path, tensors, {"resume": json.dumps(state),
                                    "resume_sha256": _digest(tensors, state)})


def load(path, model, optimizer, fingerprint):
    """Checks the resume file at ``path`` completely, then restores the model and optimizer
    from it. Returns ``(epoch, history, best, best_state)``; raises ``ResumeError``."""
    path = str(path)
    try:
        tensors, meta = checkpoint.load(path)
    except ValueError as e:
        why = str(e).replace(f"[checkpoint] {path}: ", "")
        raise _refuse(path, f"unreadable resume file ({why})") from None
    state, digest = meta.get("resume"), meta.get("resume_sha256")
    if not isinstance(state, dict) or not isinstance(digest, str):
        raise _refuse(path, "not a tfe resume file (no resume state or checksum)")
    if digest != _digest(tensors, state):
        raise _refuse(path, "damaged resume file (checksum mismatch)")
    _check_state(path, state)
    if state["fingerprint"] != fingerprint:
        raise _refuse(path, "written by a run with other settings (or use another --out)")
    model_state = _with_prefix(tensors, "model.")
    best_state = model_state if state["best"]["epoch"] == state["epoch"] else \
        _with_prefix(tensors, "best.")
    momentum = _with_prefix(tensors, "momentum.")
    _check_tensors(path, model, optimizer, model_state, best_state, momentum)
    if set(state["dropout_calls"]) != set(_dropout_calls(model)):
        raise _refuse(path, "its dropout layers are not the model's")

    model.load_state_dict(model_state)
    optimizer.load_state_dict({"lr": state["lr"], "momentum": {int(k): v
                                                               for k, v in momentum.items()}})
    modules = dict(model.named_modules())
    for name, calls in state["dropout_calls"].items():
        modules[name].calls = calls
    return state["epoch"], state["history"], state["best"], best_state


def _dropout_calls(model):
    return {name: m.calls for name, m in model.named_modules() if isinstance(m, Dropout)}


def _digest(tensors, state):
    """'sha256:<hex>' over the state (canonical JSON) and every tensor's name, dtype, shape
    and bytes, in name order."""
    h = hashlib.sha256(json.dumps(state, sort_keys=True).encode())
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_STATE = {"epoch": (_is_count, "a count"), "history": (lambda v: isinstance(v, list) and all(
              isinstance(r, dict) for r in v), "a list of epoch rows"),
          "best": (lambda v: isinstance(v, dict), "an object"),
          "lr": (lambda v: isinstance(v, list) and all(map(_is_number, v)), "a list of numbers"),
          "dropout_calls": (lambda v: isinstance(v, dict) and all(map(_is_count, v.values())),
                            "an object of counts"),
          "fingerprint": (lambda v: isinstance(v, str), "a string")}
_BEST = {"epoch": (_is_count, "a count"), "val_acc": (_is_number, "a number"),
         "val_loss": (_is_number, "a number")}


def _check_state(path, state):
    for where, schema, node in (("", _STATE, state), ("best.", _BEST, state.get("best"))):
        for key, (ok, kind) in schema.items():
            if key not in node:
                raise _refuse(path, f"resume state lacks {where}{key!r}")
            if not ok(node[key]):
                raise _refuse(path, f"resume state {where}{key!r} is not {kind}")
    if len(state["history"]) != state["epoch"] or state["best"]["epoch"] > state["epoch"]:
        raise _refuse(path, "resume state is inconsistent (epochs, history, best epoch)")


def _check_tensors(path, model, optimizer, model_state, best_state, momentum):
    expected = {k: v.shape for k, v in model.state_dict().items()}
    for what, got in (("weights", model_state), ("best-epoch weights", best_state)):
        if {k: v.shape for k, v in got.items()} != expected:
            raise _refuse(path, f"its {what} do not match the model")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for k, v in momentum.items():
        if not k.isdigit() or int(k) >= len(params) or tuple(v.shape) != tuple(
                params[int(k)].shape):
            raise _refuse(path, f"momentum buffer {k!r} does not match the model")


def _with_prefix(tensors, prefix):
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
