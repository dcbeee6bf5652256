"""Faces and expressions of whole files (images and videos), the work of ``tfe-predict``
in one process or on each Dask worker (predict_dask.py).

``predict_files(recognizer, paths)`` yields one ``FileResult`` per path, in order: the
records of its image or frames (``{"image", "frame", "time_s", "faces"}``), or the error
that stopped it. Faces of consecutive files and frames go through the engine together,
up to ``BATCH`` per call, which gives the same probabilities as one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, one_line
from .media import frames

BATCH = 128  # faces per engine call


@dataclass
class FileResult:
    path: str
    records: list = field(default_factory=list)
    error: str | None = None  # the one-line message of the InputError that stopped it
    faceless: int = 0  # images or frames read without a face
    image: np.ndarray | None = None  # a still image itself, when asked for (annotation)

    @property
    def seen(self):
        return len(self.records)


def predict_files(recognizer, paths, every=1, keep_images=False, fail_fast=False):
    """FileResults of ``paths`` in order. A file's InputError ends that file only (its
    records so far are kept) unless ``fail_fast``; a ModelFileError (the model is at
    fault) propagates."""
    from .model_reader import ModelFileError

    pending, count = [], 0  # (FileResult, [(record, boxes, crops)]) not yet classified
    for path in paths:
        result, work = FileResult(path), []
        try:
            for frame, time_s, image in frames(path, every):
                boxes, crops = recognizer.faces(image)
                result.faceless += not boxes
                record = {"image": path, "frame": frame, "time_s": time_s, "faces": []}
                result.records.append(record)
                work.append((record, boxes, crops))
                count += len(boxes)
                if keep_images and frame is None:
                    result.image = image
                if count >= BATCH:  # classify what is waiting, this file's frames included
                    _classify(recognizer, pending + [(result, work)])
                    yield from (r for r, _ in pending)
                    pending, work, count = [], [], 0
        except ModelFileError:
            raise
        except InputError as e:
            if fail_fast:
                raise
            result.error = one_line(e)
        pending.append((result, work))
    _classify(recognizer, pending)
    yield from (r for r, _ in pending)


def _classify(recognizer, pending):
    """Fills the ``faces`` of every waiting record with one engine call."""
    work = [w for _, items in pending for w in items]
    crops = [c for _, boxes, c in work if boxes]
    if not crops:
        return
    probs = recognizer.model.probabilities(np.concatenate(crops))
    at = 0
    for record, boxes, _ in work:
        record["faces"] = recognizer.describe(boxes, probs[at:at + len(boxes)])
        at += len(boxes)


_WORKER_RECOGNIZERS = {}


def predict_chunk(model_path, detect, every, paths):
    """The task of one Dask worker: FileResults of ``paths``. The worker loads each model
    once and keeps it for its next tasks."""
    from .recognizer import Recognizer

    key = (model_path, detect)
    if key not in _WORKER_RECOGNIZERS:
        _WORKER_RECOGNIZERS[key] = Recognizer(model_path, detect=detect)
    return list(predict_files(_WORKER_RECOGNIZERS[key], paths, every))
