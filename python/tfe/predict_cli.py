"""``tfe-predict``: the expressions of the faces in images, with the packaged model or
another model file.

    tfe-predict photo.jpg [more images...] [--model FILE] [--json | --csv] [--annotate OUT]

Every face gets its box, the class probabilities and the top label (the paper's Table 1
form, one row per face). A bad file is reported in one line that names it and skipped;
the rest of the batch goes on, the number of failures closes the run, and the exit status
is then 1 (``--fail-fast`` stops at the first instead). An image without a face gives no
row and a one-line notice. The older form ``tfe-predict MODEL.safetensors IMAGE...`` still
works.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys

from .errors import InputError, one_line, one_line_errors

PROG = "tfe-predict"


def _parser():
    p = argparse.ArgumentParser(prog=PROG, description="Faces and their expressions in "
                                "images (one row per face), with the model that ships with "
                                "tfe unless --model is given")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, PGM, ...; any size): "
                   "photos (faces are found) or face crops of at most 96 px a side")
    p.add_argument("--model", help="a .safetensors model file written by tfe-train "
                   "(default: the packaged FER+ model, see tfe/default_model/MODEL_CARD.md)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of a table")
    out.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.add_argument("--detect", choices=["auto", "always", "never"], default="auto",
                   help="find faces: auto (default: yes, except in images of at most 96 px a "
                   "side, taken as one face each), always, or never (the whole image is the face)")
    p.add_argument("--annotate", metavar="OUT", help="draw the boxes and labels: OUT is the "
                   "picture for one input image, a folder for several")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first bad image (default: report it and go on)")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.model is None and len(args.images) > 1 and args.images[0].endswith(".safetensors"):
        args.model = args.images.pop(0)  # the older form: MODEL IMAGE...
    with one_line_errors(PROG):
        return _run(args)


def _run(args):
    from .model_reader import ModelFileError
    from .recognizer import Recognizer

    recognizer = Recognizer(args.model, detect=args.detect)  # a bad model file: one line
    classes = recognizer.model.classes
    results, failed = [], 0
    for path in args.images:
        try:
            image, found = _faces_of(recognizer, path)
        except ModelFileError:
            raise  # the model is at fault (e.g. its weights overflow): no image will do
        except InputError as e:
            if args.fail_fast:
                raise
            print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
            failed += 1
            continue
        if not found:
            print(f"{PROG}: no face found in {path}", file=sys.stderr)
        results.append((path, found))
        if args.annotate:
            _annotate(image, found, _annotation_path(args.annotate, path, len(args.images)))
    _print(results, classes, args)
    if failed:
        if len(args.images) > 1:
            print(f"{PROG}: {failed} of {len(args.images)} images failed", file=sys.stderr)
        return 1
    return 0


def _faces_of(recognizer, path):
    from .data.images import read_image

    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not an image")
    image = read_image(path)  # BadImage (an InputError) names the file
    return image, recognizer.detect_emotions(image)


def _rows(results, classes):
    for path, found in results:
        for i, face in enumerate(found):
            probs = [face["emotions"][c] for c in classes]
            yield path, i, face["box"], probs, classes[max(range(len(probs)),
                                                           key=probs.__getitem__)]


def _print(results, classes, args):
    if args.json:
        print(json.dumps([{"image": path, "faces": [{**face, "label": max(
            face["emotions"], key=face["emotions"].get)} for face in found]}
            for path, found in results], indent=2))
        return
    if args.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "face", "x", "y", "w", "h", *classes, "label"])
        for path, i, box, probs, label in _rows(results, classes):
            w.writerow([path, i, *box, *(f"{p:.6f}" for p in probs), label])
        sys.stdout.write(buf.getvalue())
        return
    rows = list(_rows(results, classes))
    if not rows:
        return
    width = max(len(os.path.basename(r[0])) for r in rows) + 2
    print(f"{'image':{width}s}{'face':>5s}  {'box (x, y, w, h)':20s}" +
          "".join(f"{c[:8]:>10s}" for c in classes) + "  prediction")
    for path, i, box, probs, label in rows:
        print(f"{os.path.basename(path):{width}s}{i:>5d}  {', '.join(map(str, box)):20s}" +
              "".join(f"{p:10.4f}" for p in probs) + f"  {label}")


def _annotation_path(out, image_path, count):
    if count == 1:
        return out
    os.makedirs(out, exist_ok=True)
    return os.path.join(out, os.path.splitext(os.path.basename(image_path))[0] + ".png")


def _annotate(image, found, out_path):
    """The image with each face's box and its top label and probability, as PNG (JPEG
    for a .jpg / .jpeg name)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from .checkpoint import atomic_write_bytes

    picture = Image.fromarray(np.asarray(image)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 200))
    try:  # a scalable font where Pillow has one (10.1 and later)
        font = ImageFont.load_default(size=max(11, round(min(picture.size) / 30)))
    except TypeError:
        font = ImageFont.load_default()
    for face in found:
        x, y, w, h = face["box"]
        label = max(face["emotions"], key=face["emotions"].get)
        text = f"{label} {face['emotions'][label]:.0%}"
        draw.rectangle([x, y, x + w, y + h], outline=(255, 210, 0), width=line)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        lift = bottom - top + 2 * line
        ty = y - lift if y >= lift else y + h
        draw.rectangle([x, ty, x + right - left + 2 * line, ty + lift], fill=(255, 210, 0))
        draw.text((x + line, ty + line - top + y), text, fill=(0, 0, 0), font=font)
    buf = io.BytesIO()
    jpeg = out_path.lower().endswith((".jpg", ".jpeg"))
    picture.save(buf, format="JPEG" if jpeg else "PNG", **({"quality": 90} if jpeg else {}))
    try:
        atomic_write_bytes(out_path, [buf.getvalue()])
    except OSError as e:
        raise InputError(f"--annotate {out_path}: cannot write it ({e.strerror or e})") from None
