"""Training and evaluation loops shared by the three stages (identity, emotion, joint).

Selection is honest: after every epoch the model is scored on the validation split only;
the kept weights are those of the best validation epoch, and the test split is scored
once, for those weights. Each epoch ends with an atomic resume file of everything the next
epoch depends on (resume.py), so an interrupted stage continues where it stopped and ends
with the same bits as an uninterrupted one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import checkpoint
from . import resume as resume_file
from .data import BatchLoader
from .function import no_grad
from .step import TrainStep, side_input_targets
from .tensor import Tensor, host


@dataclass
class StageResult:
    name: str
    best_epoch: int  # 1-based; 0 when no epoch ran
    val_acc: float | None
    test_acc: float | None
    history: list = field(default_factory=list)
    wall_s: float = 0.0
    test_predictions: np.ndarray | None = None


def batched_forward(fn, images, normalizer, batch_size=256, side=None):
    """``fn`` (a model or one of its bound methods) on uint8 images [N, H, W] in batches,
    in evaluation mode and without a graph, on the model's device; returns the stacked
    outputs [N, ...] as a NumPy array. ``side``: the vectors [N, D] given beside the
    images to a model that takes them (``fn(x, side)``)."""
    model = getattr(fn, "__self__", fn)
    was_training = model.training
    model.eval()
    device = model.device
    out = []
    with no_grad():
        for i in range(0, len(images), batch_size):
            inputs = [Tensor(normalizer.apply(images[i:i + batch_size]))]
            if side is not None:
                inputs.append(Tensor(np.ascontiguousarray(side[i:i + batch_size], np.float32)))
            if device.is_cuda:
                inputs = [t.to(device) for t in inputs]
            out.append(np.array(host(fn(*inputs).data), copy=True))
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def predict_logits(model, images, normalizer, batch_size=256, side=None):
    """Logits [N, K] for uint8 images [N, H, W], in evaluation mode, without a graph."""
    return batched_forward(model, images, normalizer, batch_size, side)


def _takes_side_input(model):
    return getattr(model, "takes_side_input", False)


def evaluate(model, imageset, normalizer, batch_size=256):
    """(accuracy %, mean cross-entropy, predicted classes) on a labelled ImageSet (with
    its ``side`` vectors for a model that takes them)."""
    side = imageset.side if _takes_side_input(model) else None
    logits = predict_logits(model, imageset.images, normalizer, batch_size, side)
    labels = imageset.labels
    shifted = logits - logits.max(1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    loss = float(-logp[np.arange(len(labels)), labels].mean())
    pred = logits.argmax(1)
    return 100.0 * float((pred == labels).mean()), loss, pred


def _resume_path(out_dir, name):
    return os.path.join(out_dir, f"{name}.resume.safetensors")


def _best_path(out_dir, name):
    return os.path.join(out_dir, f"{name}.safetensors")


def train_stage(name, model, optimizer, scheduler, train_set, val_set, test_set, normalizer,
                *, epochs, batch_size, augmenter=None, seed=0, out_dir, save_model,
                progress=True, resume=True, fingerprint="", label="", log=print,
                cuda_graph=True, objective=None, targets="auto"):
    """Trains ``model`` (on its device) for ``epochs`` epochs and restores its
    best-validation weights. On a GPU the steady-state step is a replayed CUDA graph
    unless ``cuda_graph`` is False (see step.py).

    ``save_model(path, model)`` writes the deployable best checkpoint (with metadata).
    ``fingerprint`` identifies the run's settings: a resume file written under other
    settings is refused rather than silently continued.
    ``objective`` (step.py) is the loss, cross-entropy by default; ``targets`` is what the
    loader gives it per image (BatchLoader's ``targets``: a mode or an array).
    A model that takes a vector beside each image (``takes_side_input``) gets the sets'
    ``side`` vectors, with cross-entropy.
    ``epochs`` may be 0: the model is then scored as given.
    Returns a StageResult; the model ends holding the selected weights.
    """
    start = time.time()
    history, best = [], {"epoch": 0, "val_acc": -1.0, "val_loss": float("inf")}
    first_epoch, best_state = 0, model.state_dict()
    rpath, bpath = _resume_path(out_dir, name), _best_path(out_dir, name)
    checkpoint.remove_stale_temporaries(out_dir)
    if resume and os.path.exists(rpath):
        first_epoch, history, best, best_state = resume_file.load(rpath, model, optimizer,
                                                                  fingerprint)
        log(f"[{name}] resuming after epoch {first_epoch} of {epochs}")

    if _takes_side_input(model):
        targets, objective = side_input_targets(train_set, targets)
    loader = BatchLoader(train_set, batch_size, normalizer, augmenter=augmenter, shuffle=True,
                         seed=seed, drop_last=len(train_set) > batch_size, targets=targets)
    step = TrainStep(model, optimizer, use_graph=cuda_graph, objective=objective)
    for epoch in range(first_epoch, epochs):
        scheduler.set_epoch(epoch)
        loader.set_epoch(epoch)
        model.train()
        t0, seen, labelled, correct, loss_sum = time.time(), 0, 0, 0, 0.0
        bar = _progress(loader, f"{label + ' ' if label else ''}{name} {epoch + 1}/{epochs}",
                        progress)
        for x, y in bar:
            loss, logits = step(x, y)
            n = len(x)
            seen += n
            loss_sum += loss.item() * n
            target = step.objective.labels(y)
            labelled += int((target >= 0).sum())
            correct += int((host(logits.data).argmax(1) == target).sum())
            if progress:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}",
                                acc=f"{100 * correct / max(labelled, 1):.1f}",
                                img_s=f"{seen / (time.time() - t0):.0f}")
        train_s = time.time() - t0
        val_acc, val_loss, _ = evaluate(model, val_set, normalizer)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
               "train_acc": 100.0 * correct / max(labelled, 1), "val_loss": val_loss,
               "val_acc": val_acc, **_learning_rates(optimizer),
               "images_per_s": seen / max(train_s, 1e-9)}
        history.append(row)
        if (val_acc, -val_loss) > (best["val_acc"], -best["val_loss"]):
            best = {"epoch": epoch + 1, "val_acc": val_acc, "val_loss": val_loss}
            best_state = model.state_dict()
            save_model(bpath, model)
        resume_file.save(rpath, model, optimizer, epoch=epoch + 1, history=history, best=best,
                         best_state=best_state, fingerprint=fingerprint)
        if not progress:
            log(f"[{name}] epoch {epoch + 1}/{epochs} lr {row['lr']:.3g} "
                f"loss {row['train_loss']:.3f} "
                f"train {row['train_acc']:.1f}% val {val_acc:.1f}% "
                f"({row['images_per_s']:.0f} img/s)")

    model.load_state_dict(best_state)
    val_acc = best["val_acc"] if best["epoch"] else None
    if epochs == 0:  # nothing trained here: the given weights are the stage's result
        val_acc = evaluate(model, val_set, normalizer)[0]
    test_acc, pred = None, None
    if test_set is not None and len(test_set):
        test_acc, _, pred = evaluate(model, test_set, normalizer)
    return StageResult(name, best["epoch"], val_acc, test_acc, history, time.time() - start,
                       pred)


def _progress(iterable, desc, enabled):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)


def _learning_rates(optimizer) -> dict:
    """The epoch's learning rate: the first parameter group's (the model being trained;
    in the joint stage the merged network, not the DeepID branch), and every group's when
    there are several."""
    rates = [g["lr"] for g in optimizer.param_groups]
    return {"lr": rates[0], **({"lr_groups": rates} if len(rates) > 1 else {})}
