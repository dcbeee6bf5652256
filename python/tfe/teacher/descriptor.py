"""The teacher's descriptor of one face image (needs the optional extra: dlib).

The recipe (``recipe.RECIPE``): tfe's 48x48 grayscale preprocessing, the gray copied to
three channels and enlarged to 150x150 (bicubic), dlib's 5-point landmarks placed on the
whole image as the face box, and ``compute_face_descriptor`` (no jitter, dlib's default
padding of 0.25 around the aligned face): a 128-d vector, float32.
"""

from __future__ import annotations

import numpy as np

from ..data.transforms import resize_gray
from .models import model_paths
from .recipe import DIM

SIZE = 150  # the face model's input side; dlib aligns a 150x150 chip from the landmarks
_BASE = 48  # tfe's network input: the teacher sees the same pixels DeepID sees


def teacher_input(image) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3|4] -> the face model's uint8 [150, 150, 3] RGB input."""
    from PIL import Image

    gray = resize_gray(np.asarray(image), _BASE)
    big = np.asarray(Image.fromarray(gray).resize((SIZE, SIZE), Image.BICUBIC))
    return np.ascontiguousarray(np.repeat(big[:, :, None], 3, axis=2))


class Teacher:
    """Holds the two dlib models; one per process (they are not shared between threads)."""

    def __init__(self, verify_models: bool = True):
        import dlib

        paths = model_paths(verify=verify_models)
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(paths["landmark_model"])
        self._face = dlib.face_recognition_model_v1(paths["face_model"])
        self._box = dlib.rectangle(0, 0, SIZE - 1, SIZE - 1)

    def describe(self, image) -> np.ndarray:
        """float32 [128] descriptor of one face image (uint8 gray or RGB, any size)."""
        rgb = teacher_input(image)
        shape = self._landmarks(rgb, self._box)
        d = self._face.compute_face_descriptor(rgb, shape, 0, 0.25)
        out = np.asarray(d, np.float32).reshape(-1)
        if out.shape != (DIM,) or not np.all(np.isfinite(out)):
            raise ValueError(f"face model returned {out.shape} / non-finite values")
        return out
