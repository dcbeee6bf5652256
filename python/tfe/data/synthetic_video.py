"""A video of a SYNTHETIC face changing expression, for trying and testing tfe-predict on
video without any real person's face.

    python -m tfe.data.synthetic_video OUT.avi [--seconds-per-expression S] [--fps F]

One procedural person (data.synthetic) on a plain background goes from neutral to each
expression of ``SEQUENCE`` and back (intensity rising and falling as a half sine), with a
slow sideways drift. Written with OpenCV (Motion-JPEG in AVI, which every OpenCV build
can read back).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .synthetic import CLASSES, SyntheticFaces
from .transforms import resize_gray

SEQUENCE = ("happy", "surprise", "sadness", "anger")


def expression_frames(seconds_per_expression=2.0, fps=10, size=(320, 240), face=150,
                      person=0, seed=0):
    """uint8 gray frames [N, H, W] and the shown class and intensity per frame."""
    gen = SyntheticFaces(seed=seed, size=96, jitter=0)
    per = max(2, int(round(seconds_per_expression * fps)))
    width, height = size
    frames, shown = [], []
    for name in SEQUENCE:
        k = CLASSES.index(name)
        for i in range(per):
            intensity = float(np.sin(np.pi * i / (per - 1)))
            img = gen.expression_grid([person], intensity=intensity, classes=[k])[0, 0]
            canvas = np.full((height, width), 128, np.uint8)
            drift = int(round(0.15 * (width - face) * np.sin(2 * np.pi * len(frames) /
                                                              (per * len(SEQUENCE)))))
            x0, y0 = (width - face) // 2 + drift, (height - face) // 2
            canvas[y0:y0 + face, x0:x0 + face] = resize_gray(img, face)
            frames.append(canvas)
            shown.append((name, intensity))
    return np.stack(frames), shown


def write_video(path, frames, fps=10):
    """Gray frames [N, H, W] as a Motion-JPEG AVI; ValueError when OpenCV cannot write."""
    import cv2

    n, h, w = frames.shape
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (w, h))
    if not out.isOpened():
        raise ValueError(f"{path}: OpenCV cannot write a Motion-JPEG AVI here")
    try:
        for f in frames:
            out.write(np.repeat(f[..., None], 3, axis=2))
    finally:
        out.release()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tfe.data.synthetic_video",
                                description=__doc__.splitlines()[0])
    p.add_argument("out", help="the .avi file to write")
    p.add_argument("--seconds-per-expression", type=float, default=2.0)
    p.add_argument("--fps", type=int, default=10)
    args = p.parse_args(argv)
    frames, _ = expression_frames(args.seconds_per_expression, args.fps)
    write_video(args.out, frames, args.fps)
    print(f"{args.out}: {len(frames)} frames of a SYNTHETIC face "
          f"({', '.join(SEQUENCE)}, each from and back to neutral)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
