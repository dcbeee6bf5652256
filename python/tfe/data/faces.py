"""Face detection and cropping with OpenCV's bundled Haar cascades.

The network sees size x size grayscale faces; images straight from a camera (the official
CK+ frames are 640x490 with the face in the middle of a studio background) must be cut down
to the face first, the same way at training and at prediction time. This module does that:

1. grayscale (ITU-R BT.601 luma, ``transforms.to_gray``);
2. the largest frontal face found by ``haarcascade_frontalface_default.xml``;
3. roll alignment where two eyes are found (``haarcascade_eye.xml``, searched in the upper
   part of the face box, one eye on each side): the image is rotated about the eye
   midpoint so that the line between the eye centres is horizontal (angles over
   ``max_roll`` degrees are ignored as false detections), and the crop is placed on the
   eyes (centred between them, eye line at ``EYE_LINE`` of the box height from the top),
   which locates a tilted face better than its Haar box;
4. a square of the box's size (enlarged by ``margin`` per side) cut out (outside the image:
   edge pixels repeated) and resized with ``transforms.resize_gray`` (area averaging when
   shrinking).

``describe(...)`` returns this recipe as one string; it belongs in a model's preprocessing
record so that prediction reproduces it.

OpenCV (``opencv-python-headless<5``, a dependency of tfe) is imported lazily, only when
a face is detected: the rest of tfe works without it. ``opencv_available()`` says whether
it can be used; ``crop_face`` raises ImportError with the install hint when it cannot.
OpenCV 5 no longer bundles the Haar cascades, hence the version bound.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np

from .transforms import resize_gray, to_gray

__all__ = ["FaceCrop", "crop_box", "crop_face", "describe", "detect_faces", "opencv_available",
           "opencv_unavailable_reason"]

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
INSTALL_HINT = 'pip install "opencv-python-headless<5"'

# detectMultiScale settings (OpenCV's usual ones); the smallest face searched is a fraction
# of the shorter image side, which keeps detection on 640x490 frames to a few tens of ms.
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_FACE_FRACTION = 0.2
# Height of the eye line in an upright frontal-face box, as a fraction from its top.
EYE_LINE = 0.4


@functools.lru_cache(maxsize=1)
def _opencv():
    """(cv2, face cascade, eye cascade), or raise ImportError saying why not."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError(f"face detection needs OpenCV ({e}): {INSTALL_HINT}") from None
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not hasattr(cv2, "CascadeClassifier") or not folder:
        raise ImportError(f"OpenCV {cv2.__version__} has no bundled Haar cascades "
                          f"(removed in OpenCV 5): {INSTALL_HINT}")
    cascades = []
    for name in (FACE_CASCADE, EYE_CASCADE):
        path = os.path.join(folder, name)
        c = cv2.CascadeClassifier(path)
        if c.empty():
            raise ImportError(f"{path}: OpenCV cannot load this Haar cascade: {INSTALL_HINT}")
        cascades.append(c)
    return cv2, cascades[0], cascades[1]


def opencv_unavailable_reason() -> str | None:
    """None when face detection can run, else why not (with the install hint)."""
    try:
        _opencv()
    except ImportError as e:
        return str(e)
    return None


def opencv_available() -> bool:
    return opencv_unavailable_reason() is None


def describe(size: int = 48, align: bool = True, margin: float = 0.0) -> str:
    """The preprocessing recipe of ``crop_face`` with these settings, as one line."""
    steps = [
        "grayscale (BT.601 luma)",
        f"largest face of OpenCV {FACE_CASCADE} (scaleFactor {SCALE_FACTOR}, minNeighbors "
        f"{MIN_NEIGHBORS}, min size {MIN_FACE_FRACTION:g} x shorter side)",
    ]
    if align:
        steps.append(f"where {EYE_CASCADE} finds both eyes: roll alignment on them and crop "
                     f"centred on them (eye line at {EYE_LINE:g} of the box height)")
    steps.append(f"square box{f' enlarged by {margin:g} per side' if margin else ''}, "
                 f"area-average resize to {size}x{size}")
    return "; ".join(steps)


@dataclass
class FaceCrop:
    """One cropped face: ``image`` uint8 [size, size]; ``box`` (x, y, w, h) of the detected
    face in the input image; ``roll`` the rotation applied in degrees (0 when not aligned);
    ``aligned`` whether two eyes were found and used; ``description`` what was done."""

    image: np.ndarray
    box: tuple[int, int, int, int]
    roll: float
    aligned: bool
    description: str


def _gray_u8(image) -> np.ndarray:
    g = np.asarray(image)
    if g.ndim == 2 and g.dtype == np.uint8:
        return g
    return np.clip(np.rint(to_gray(g)), 0, 255).astype(np.uint8)


def detect_faces(image, min_fraction: float = MIN_FACE_FRACTION
                 ) -> list[tuple[int, int, int, int]]:
    """All frontal faces (x, y, w, h) in an image, largest first; faces smaller than
    ``min_fraction`` of the shorter image side (or 20 px) are not searched."""
    cv2, face_cascade, _ = _opencv()
    gray = _gray_u8(image)
    side = max(int(min(gray.shape) * min_fraction), 20)
    found = face_cascade.detectMultiScale(gray, scaleFactor=SCALE_FACTOR,
                                          minNeighbors=MIN_NEIGHBORS, minSize=(side, side))
    boxes = [tuple(int(v) for v in b) for b in np.asarray(found).reshape(-1, 4)]
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b[1], b[0]))


def _eye_roll(gray, box, max_roll):
    """Roll in degrees: atan2(dy, dx) from the image-left eye centre to the image-right one
    (y down, so positive = the image-right eye is lower); None without one eye on each
    side of the face or when the angle is implausible."""
    cv2, _, eye_cascade = _opencv()
    x, y, w, h = box
    upper = gray[y : y + h // 2 + h // 8, x : x + w]
    side = max(w // 10, 8)
    found = eye_cascade.detectMultiScale(upper, scaleFactor=SCALE_FACTOR,
                                         minNeighbors=MIN_NEIGHBORS, minSize=(side, side),
                                         maxSize=(w // 2, w // 2))
    eyes = sorted((tuple(int(v) for v in e) for e in np.asarray(found).reshape(-1, 4)),
                  key=lambda e: -e[2] * e[3])
    left = [e for e in eyes if e[0] + e[2] / 2 < w / 2]
    right = [e for e in eyes if e[0] + e[2] / 2 >= w / 2]
    if not left or not right:
        return None
    (lx, ly, lw, lh), (rx, ry, rw, rh) = left[0], right[0]
    left_c = (x + lx + lw / 2, y + ly + lh / 2)
    right_c = (x + rx + rw / 2, y + ry + rh / 2)
    angle = math.degrees(math.atan2(right_c[1] - left_c[1], right_c[0] - left_c[0]))
    if abs(angle) > max_roll:
        return None
    return angle, ((left_c[0] + right_c[0]) / 2, (left_c[1] + right_c[1]) / 2)


def _cut(gray, cx, cy, side, size):
    """The side x side square centred on (cx, cy), edge pixels repeated outside, resized."""
    h, w = gray.shape
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    rows = np.clip(np.arange(y0, y0 + side), 0, h - 1)
    cols = np.clip(np.arange(x0, x0 + side), 0, w - 1)
    return resize_gray(gray[np.ix_(rows, cols)], size)


def crop_box(image, box, size: int = 48, margin: float = 0.0) -> np.ndarray:
    """The face in ``box`` (x, y, w, h) as uint8 [size, size]: the square of the box's
    larger side, enlarged by ``margin`` per side, centred on the box (edge pixels repeated
    outside the image), without alignment."""
    gray = _gray_u8(image)
    x, y, w, h = box
    side = max(int(round(max(w, h) * (1.0 + 2.0 * margin))), 1)
    return _cut(gray, x + w / 2.0, y + h / 2.0, side, size)


def crop_face(image, size: int = 48, align: bool = True, margin: float = 0.0,
              max_roll: float = 30.0) -> FaceCrop | None:
    """The largest face of ``image`` (uint8 [H, W] or [H, W, 3|4]) as a FaceCrop, or None
    when no face is found. Raises ImportError (with the install hint) without OpenCV."""
    cv2, _, _ = _opencv()
    gray = _gray_u8(image)
    faces = detect_faces(gray)
    if not faces:
        return None
    box = faces[0]
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    eyes = _eye_roll(gray, box, max_roll) if align else None
    roll = None
    if eyes is not None:
        roll, (ex, ey) = eyes
        # Rotating by +roll about the eye midpoint (OpenCV: positive = counter-clockwise on
        # screen) brings the image-right eye onto the line of the image-left one. The crop
        # is then placed on the eyes, which locate the face better than the Haar box of a
        # tilted face does: centred between them horizontally, the eye line EYE_LINE of the
        # box height from its top (where it is in upright detections).
        if abs(roll) > 1e-3:
            m = cv2.getRotationMatrix2D((ex, ey), roll, 1.0)
            gray = cv2.warpAffine(gray, m, (gray.shape[1], gray.shape[0]),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cx, cy = ex, ey + (0.5 - EYE_LINE) * h
    side = max(int(round(max(w, h) * (1.0 + 2.0 * margin))), 1)
    out = _cut(gray, cx, cy, side, size)
    aligned = roll is not None
    what = (f"face {w}x{h} at ({x}, {y})"
            + (f", rotated {roll:+.1f} deg on the eyes" if aligned else ", not aligned")
            + f", {side}px square -> {size}x{size}")
    return FaceCrop(out, box, float(roll) if aligned else 0.0, aligned, what)
