"""Expressions of the faces in a photograph, with the model that ships with tfe.

``tfe.load_model()`` loads the packaged model (``default_model/``, its card in
``MODEL_CARD.md``) and ``tfe.load_model("FILE")`` another model file.
``tfe.Recognizer().detect_emotions(image)`` finds the faces (OpenCV's frontal-face Haar
cascade), crops each one the way the packaged model's training faces were framed, and
returns per face ``{"box": [x, y, w, h], "emotions": {label: p}}``, largest face first.

Framing: FER2013's 48×48 faces are wider than the Haar box. Run on FER2013Valid
(PublicTest) images enlarged to 192×192, the cascade's box covers a median 0.83 of the
image side (interquartile 0.79–0.86), centred. The crop is therefore the box enlarged by
``FER_MARGIN`` = 0.1 of its side on every side (0.83 × 1.2 ≈ 1), centred on the box,
without roll alignment (FER2013's faces are not aligned).
"""

from __future__ import annotations

import os

import numpy as np

from .data import faces
from .data.images import read_image
from .data.transforms import resize_gray, to_gray
from .errors import InputError
from .modelfile import LoadedModel

FER_MARGIN = 0.1
DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model",
                             "ferplus-resnet18.safetensors")
# Faces from this fraction of the shorter image side up are searched: group photos have
# small faces; the cascade is slower the smaller it searches.
MIN_FACE_FRACTION = 0.05
# An image no larger than this (both sides, in pixels) is taken to be a face already
# cropped (a FER-style 48×48 face is too small for the cascade to find a face in it).
CROPPED_MAX_SIDE = 96


def default_model_path() -> str:
    """The packaged model file (the C library loads it from this path too)."""
    return DEFAULT_MODEL


def load_model(path=None) -> LoadedModel:
    """The model file at ``path``, or the packaged model when ``path`` is None."""
    return LoadedModel(DEFAULT_MODEL if path is None else path)


def as_gray(image, channels: str = "rgb") -> np.ndarray:
    """uint8 [H, W] from a file path, a NumPy array (gray [H, W], [H, W, 3] colour in
    ``channels`` order "rgb" or "bgr" (OpenCV's), [H, W, 4] with alpha) or a PIL image."""
    if isinstance(image, (str, os.PathLike)):
        image = read_image(image)  # BadImage names the file
    elif hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        if channels not in ("rgb", "bgr"):
            raise InputError(f"channels: expected 'rgb' or 'bgr', got {channels!r}")
        a = a[..., :3]
        if channels == "bgr":
            a = a[..., ::-1]
    elif a.ndim != 2:
        raise InputError(f"image: expected a gray [H, W] or colour [H, W, 3|4] array, got "
                         f"shape {a.shape}")
    if a.size == 0:
        raise InputError("image: it is empty")
    if a.ndim == 2 and a.dtype == np.uint8:
        return a
    if a.dtype != np.uint8:
        if a.dtype.kind not in "uif" or not np.isfinite(a).all():
            raise InputError(f"image: expected finite gray levels 0..255, got {a.dtype} "
                             "values that are not")
        a = np.clip(a, 0, 255)
    return np.clip(np.rint(to_gray(a)), 0, 255).astype(np.uint8)


class Recognizer:
    """Faces and their expressions in photographs.

    ``model``: a LoadedModel, a model file path, or None for the packaged model.
    ``detect``: "auto" (find faces, but take an image of at most CROPPED_MAX_SIDE pixels a
    side as one face already cropped), "always", or "never" (every image is one face)."""

    def __init__(self, model=None, detect: str = "auto", margin: float = FER_MARGIN,
                 min_face_fraction: float = MIN_FACE_FRACTION):
        if detect not in ("auto", "always", "never"):
            raise InputError(f"detect: expected 'auto', 'always' or 'never', got {detect!r}")
        self.model = model if isinstance(model, LoadedModel) else load_model(model)
        self.detect, self.margin, self.min_face_fraction = detect, margin, min_face_fraction
        self.size = self.model.input_size[0]

    def faces(self, image, channels: str = "rgb"):
        """(boxes [(x, y, w, h)], crops uint8 [N, size, size]) of one image."""
        gray = as_gray(image, channels)
        h, w = gray.shape
        whole = self.detect == "never" or (self.detect == "auto" and
                                            max(h, w) <= CROPPED_MAX_SIDE)
        if whole:
            return [(0, 0, w, h)], resize_gray(gray, self.size)[None]
        reason = faces.opencv_unavailable_reason()
        if reason:
            raise InputError(f"finding faces in photos needs OpenCV: {reason}")
        boxes = faces.detect_faces(gray, self.min_face_fraction)
        crops = [faces.crop_box(gray, b, self.size, self.margin) for b in boxes]
        return boxes, (np.stack(crops) if crops else np.zeros((0, self.size, self.size),
                                                              np.uint8))

    def detect_emotions(self, image, channels: str = "rgb") -> list[dict]:
        """Per face, largest first: {"box": [x, y, w, h], "emotions": {label: p}}; an
        empty list when the image has no face."""
        boxes, crops = self.faces(image, channels)
        if not boxes:
            return []
        return self.describe(boxes, self.model.probabilities(crops))

    def describe(self, boxes, probs):
        """The result form of faces: [{"box": [x, y, w, h], "emotions": {label: p}}]."""
        return [{"box": [int(v) for v in box],
                 "emotions": {c: float(p) for c, p in zip(self.model.classes, row)}}
                for box, row in zip(boxes, probs)]
