"""``tfe-predict``: the expressions of the faces in images and videos, with the packaged
model or another model file.

    tfe-predict INPUT... [--model FILE] [--json | --csv] [--annotate OUT] [--every N]
                [--plot OUT]

An INPUT is an image, a video (every ``--every``-th frame) or a folder of them (walked
recursively). Every face gets its box, the class probabilities and the top label (the
paper's Table 1 form, one row per face and frame); faces are batched through the engine
across images and frames. A bad file is reported in one line that names it and skipped;
the rest of the batch goes on, the number of failures closes the run, and the exit status
is then 1 (``--fail-fast`` stops at the first instead). An image without a face gives no
row and a one-line notice. The older form ``tfe-predict MODEL.safetensors IMAGE...``
still works.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys

import numpy as np

from . import cli_inputs as checks
from .errors import InputError, one_line, one_line_errors

PROG = "tfe-predict"
BATCH = 128  # faces per engine call


def _parser():
    p = argparse.ArgumentParser(prog=PROG, description="Faces and their expressions in "
                                "images and videos (one row per face), with the model that "
                                "ships with tfe unless --model is given")
    p.add_argument("images", nargs="+", metavar="INPUT", help="image files (PNG, JPEG, PGM, "
                   "...; photos, or face crops of at most 96 px a side), videos (MP4, AVI, "
                   "MOV, MKV, WebM, ...) or folders of them (recursively)")
    p.add_argument("--model", help="a .safetensors model file written by tfe-train "
                   "(default: the packaged FER+ model, see tfe/default_model/MODEL_CARD.md)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of a table")
    out.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.add_argument("--detect", choices=["auto", "always", "never"], default="auto",
                   help="find faces: auto (default: yes, except in images of at most 96 px a "
                   "side, taken as one face each), always, or never (the whole image is the face)")
    p.add_argument("--every", type=checks.at_least(1), default=1, metavar="N",
                   help="videos: every N-th frame (default 1: all)")
    p.add_argument("--annotate", metavar="OUT", help="draw the boxes and labels on still "
                   "images: OUT is the picture for one input image, a folder for several")
    p.add_argument("--plot", metavar="OUT", help="videos: the emotions of the largest face "
                   "over time as a PNG: OUT is the picture for one video, a folder for several")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first bad file (default: report it and go on)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.model is None and len(args.images) > 1 and args.images[0].endswith(".safetensors"):
        args.model = args.images.pop(0)  # the older form: MODEL IMAGE...
    with one_line_errors(PROG):
        return _run(args)


def _say(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _run(args):
    from .media import expand, frames, is_video
    from .model_reader import ModelFileError
    from .recognizer import Recognizer

    recognizer = Recognizer(args.model, detect=args.detect)  # a bad model file: one line
    classes = recognizer.model.classes
    inputs = expand(args.images, log=lambda m: print(m, file=sys.stderr))
    stills = [p for p in inputs if not is_video(p)]
    videos = [p for p in inputs if is_video(p)]
    writer = _writer(args, classes)
    batch = _FaceBatch(recognizer, writer)
    failed = 0
    for path in _progress(inputs, args):
        faceless = seen = 0
        curve = []
        try:
            for frame, time_s, image in frames(path, args.every):
                boxes, crops = recognizer.faces(image)
                seen += 1
                faceless += not boxes
                done = None
                if args.annotate and frame is None:
                    target = _one_or_many(args.annotate, path, len(stills))
                    done = lambda rec, image=image, target=target: _annotate(  # noqa: E731
                        image, rec["faces"], target)
                if args.plot and frame is not None:
                    done = lambda rec, curve=curve: curve.append(rec)  # noqa: E731
                batch.add({"image": path, "frame": frame, "time_s": time_s}, boxes, crops,
                          done)
        except ModelFileError:
            raise  # the model is at fault (e.g. its weights overflow): no file will do
        except InputError as e:
            if args.fail_fast:
                raise
            _say(f"error: {one_line(e)}")
            failed += 1
        if seen == 1 and faceless and not is_video(path):
            _say(f"no face found in {path}")
        elif is_video(path) and faceless:
            _say(f"{path}: no face found in {faceless} of {seen} frames read")
        if args.plot and is_video(path) and seen:
            target = _one_or_many(args.plot, path, len(videos))
            batch.then(lambda curve=curve, target=target, path=path: _plot(
                curve, classes, target, path))
    batch.flush()
    writer.close()
    if failed:
        if len(inputs) > 1:
            _say(f"{failed} of {len(inputs)} {'files' if videos else 'images'} failed")
        return 1
    return 0


class _FaceBatch:
    """Faces of several images and frames through the engine in one call of up to BATCH
    faces; records go to the writer in input order."""

    def __init__(self, recognizer, writer):
        self.recognizer, self.writer = recognizer, writer
        self.pending, self.count = [], 0

    def add(self, record, boxes, crops, done=None):
        """One image or frame; ``done(record)`` runs once its faces are classified."""
        self.pending.append((record, boxes, crops, done))
        self.count += len(boxes)
        if self.count >= BATCH:
            self.flush()

    def then(self, action):
        """``action()`` once everything added so far is classified (e.g. a video's plot)."""
        self.pending.append((None, [], [], lambda _: action()))

    def flush(self):
        if not self.pending:
            return
        crops = [c for _, _, c, _ in self.pending if len(c)]
        probs = self.recognizer.model.probabilities(np.concatenate(crops)) if crops else None
        at = 0
        classes = self.recognizer.model.classes
        for record, boxes, _, done in self.pending:
            if record is None:
                done(None)
                continue
            record["faces"] = [{"box": [int(v) for v in box],
                                "emotions": {c: float(p) for c, p in zip(classes, row)}}
                               for box, row in zip(boxes, probs[at:at + len(boxes)]
                                                   if boxes else [])]
            at += len(boxes)
            self.writer.write(record)
            if done is not None:
                done(record)
        self.pending, self.count = [], 0


def _label(face):
    return max(face["emotions"], key=face["emotions"].get)


def _writer(args, classes):
    if args.json:
        return _JsonWriter()
    if args.csv:
        return _CsvWriter(classes)
    return _TableWriter(classes)


class _JsonWriter:
    """A JSON array, one element per image or frame, written as the results come."""

    def __init__(self):
        self.first = True

    def write(self, record):
        rec = {k: v for k, v in record.items() if v is not None or k not in ("frame", "time_s")}
        rec["faces"] = [{**f, "label": _label(f)} for f in record["faces"]]
        text = json.dumps(rec, indent=2)
        sys.stdout.write(("[\n" if self.first else ",\n") + text)
        self.first = False
        sys.stdout.flush()

    def close(self):
        sys.stdout.write("[]\n" if self.first else "\n]\n")


class _CsvWriter:
    def __init__(self, classes):
        self.classes, self.started = classes, False

    def write(self, record):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if not self.started:
            w.writerow(["image", "frame", "time_s", "face", "x", "y", "w", "h", *self.classes,
                        "label"])
            self.started = True
        for i, face in enumerate(record["faces"]):
            t = record["time_s"]
            w.writerow([record["image"], "" if record["frame"] is None else record["frame"],
                        "" if t is None else f"{t:.3f}", i, *face["box"],
                        *(f"{face['emotions'][c]:.6f}" for c in self.classes), _label(face)])
        sys.stdout.write(buf.getvalue())

    def close(self):
        pass


class _TableWriter:
    def __init__(self, classes):
        self.classes, self.started = classes, False

    def write(self, record):
        name = os.path.basename(record["image"])
        if record["frame"] is not None:
            name += f"@{record['frame']}"
        for i, face in enumerate(record["faces"]):
            if not self.started:
                print(f"{'image':24s}{'face':>5s}  {'box (x, y, w, h)':20s}" +
                      "".join(f"{c[:8]:>10s}" for c in self.classes) + "  prediction")
                self.started = True
            print(f"{name:24s}{i:>5d}  {', '.join(map(str, face['box'])):20s}" +
                  "".join(f"{face['emotions'][c]:10.4f}" for c in self.classes) +
                  f"  {_label(face)}", flush=True)

    def close(self):
        pass


def _progress(items, args):
    if args.no_progress or len(items) < 2 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=PROG, unit="file", leave=False, dynamic_ncols=True)


def _one_or_many(out, input_path, count):
    """OUT itself for one input; OUT/<input name>.png for several."""
    if count == 1:
        return out
    os.makedirs(out, exist_ok=True)
    return os.path.join(out, os.path.splitext(os.path.basename(input_path))[0] + ".png")


def _write_picture(out_path, save, what):
    from .checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    save(buf)
    try:
        atomic_write_bytes(out_path, [buf.getvalue()])
    except OSError as e:
        raise InputError(f"{what} {out_path}: cannot write it ({e.strerror or e})") from None


def _annotate(image, found, out_path):
    """The image with each face's box and its top label and probability, as PNG (JPEG
    for a .jpg / .jpeg name)."""
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 200))
    try:  # a scalable font where Pillow has one (10.1 and later)
        font = ImageFont.load_default(size=max(11, round(min(picture.size) / 30)))
    except TypeError:
        font = ImageFont.load_default()
    for face in found:
        x, y, w, h = face["box"]
        label = _label(face)
        text = f"{label} {face['emotions'][label]:.0%}"
        draw.rectangle([x, y, x + w, y + h], outline=(255, 210, 0), width=line)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        lift = bottom - top + 2 * line
        ty = y - lift if y >= lift else y + h
        draw.rectangle([x, ty, x + right - left + 2 * line, ty + lift], fill=(255, 210, 0))
        draw.text((x + line, ty + line - top + y), text, fill=(0, 0, 0), font=font)
    jpeg = out_path.lower().endswith((".jpg", ".jpeg"))
    _write_picture(out_path, lambda buf: picture.save(
        buf, format="JPEG" if jpeg else "PNG", **({"quality": 90} if jpeg else {})),
        "--annotate")


def _plot(records, classes, out_path, video):
    """The probabilities of the largest face of each frame read, against time."""
    from .plots import plot_emotions_over_time

    timed = all(r["time_s"] is not None for r in records)
    x = [r["time_s"] if timed else r["frame"] for r in records]
    probs = np.array([[r["faces"][0]["emotions"][c] for c in classes] if r["faces"]
                      else [np.nan] * len(classes) for r in records])
    _write_picture(out_path, lambda buf: plot_emotions_over_time(
        x, probs, classes, buf, os.path.basename(video), "time (s)" if timed else "frame"),
        "--plot")
