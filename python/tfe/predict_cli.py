"""``tfe-predict``: the expressions of the faces in images and videos, with the packaged
model or another model file.

    tfe-predict INPUT... [--model FILE] [--json | --csv | --out FILE] [--annotate OUT]
                [--every N] [--plot OUT] [--workers N | --scheduler ADDRESS]

An INPUT is an image, a video (every ``--every``-th frame) or a folder of them (walked
recursively). Every face gets its box, the class probabilities and the top label (the
paper's Table 1 form, one row per face and frame); faces are batched through the engine
across images and frames. A bad file is reported in one line that names it and skipped;
the rest of the batch goes on, the number of failures closes the run, and the exit status
is then 1 (``--fail-fast`` stops at the first instead). An image without a face gives no
row and a one-line notice. ``--out`` makes a run resumable (predict_output.py);
``--workers`` / ``--scheduler`` spread the files over Dask (predict_dask.py). The older form ``tfe-predict MODEL.safetensors IMAGE...``
still works.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys

import numpy as np

from . import cli_inputs as checks
from .errors import InputError, one_line_errors
from .predict_output import top_label as _label

PROG = "tfe-predict"


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
    p.add_argument("--out", metavar="FILE", help="write the rows to FILE (.csv or .jsonl) "
                   "as inputs finish, with a ledger FILE.done: the same command after an "
                   "interruption resumes after the last finished input")
    p.add_argument("--workers", type=checks.at_least(1), metavar="N", help="spread the "
                   "inputs over a local Dask cluster of N worker processes (dask.distributed)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="spread the inputs over an "
                   "existing Dask cluster (e.g. tcp://host:8786); its workers need tfe and "
                   "must see the input files and the model file at the same paths")
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
    from .media import expand, is_video
    from .predict_output import Output
    from .recognizer import Recognizer

    recognizer = Recognizer(args.model, detect=args.detect)  # a bad model file: one line
    classes = recognizer.model.classes
    inputs = expand(args.images, log=lambda m: print(m, file=sys.stderr))
    stills = sum(not is_video(p) for p in inputs)
    videos = len(inputs) - stills
    output = Output(classes, args.out, "json" if args.json else "csv" if args.csv else "table")
    todo = [p for p in inputs if p not in output.done]
    if output.done:
        _say(f"{args.out}: resuming: {len(inputs) - len(todo)} of {len(inputs)} inputs "
             "already done")
    failed = 0
    try:
        for result in _results(args, recognizer, todo):
            _report(result, args, classes, stills, videos)
            output.write(result)
            failed += result.error is not None
    finally:
        output.close()
    if failed:
        if len(inputs) > 1:
            _say(f"{failed} of {len(inputs)} {'files' if videos else 'images'} failed")
        return 1
    return 0


def _report(result, args, classes, stills, videos):
    """The notices and pictures of one finished input."""
    from .media import is_video

    path = result.path
    if result.error:
        _say(f"error: {result.error}")
    if result.seen == 1 and result.faceless and not is_video(path):
        _say(f"no face found in {path}")
    elif is_video(path) and result.faceless:
        _say(f"{path}: no face found in {result.faceless} of {result.seen} frames read")
    if args.annotate and not is_video(path) and result.records:
        image = result.image
        if image is None:  # computed elsewhere (a Dask worker): read it here again
            from .data.images import read_image

            image = read_image(path)
        _annotate(image, result.records[0]["faces"], _one_or_many(args.annotate, path, stills))
    if args.plot and is_video(path) and result.records:
        _plot(result.records, classes, _one_or_many(args.plot, path, videos), path)


def _results(args, recognizer, paths):
    """FileResults of ``paths`` in input order: in this process, or on a Dask cluster."""
    from .predict_files import predict_files

    bar = _progress_bar(args, len(paths))
    if args.scheduler or args.workers:
        from .predict_dask import predict_on_cluster

        results = predict_on_cluster(paths, os.path.abspath(recognizer.model.path),
                                     args.detect, args.every,
                                     scheduler=args.scheduler, workers=args.workers,
                                     fail_fast=args.fail_fast)
    else:
        results = predict_files(recognizer, paths, args.every,
                                keep_images=bool(args.annotate), fail_fast=args.fail_fast)
    for r in results:
        if bar is not None:
            bar.update(1)
        yield r
    if bar is not None:
        bar.close()


def _progress_bar(args, total):
    """A tqdm bar over the inputs, or None (not a terminal, --no-progress, one input)."""
    if args.no_progress or total < 2 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=PROG, unit="file", leave=False, dynamic_ncols=True)


def _one_or_many(out, input_path, count):
    """OUT itself for one input; OUT/<input name>.png for several."""
    if count == 1:
        return out
    os.makedirs(out, exist_ok=True)
    return os.path.join(out, os.path.splitext(os.path.basename(input_path))[0] + ".png")


@contextlib.contextmanager
def _writing(option, out_path):
    """An OSError while writing ``out_path`` becomes one line naming the option."""
    try:
        yield
    except OSError as e:
        raise InputError(f"{option} {out_path}: cannot write it ({e.strerror or e})") from None


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
    from .checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    jpeg = out_path.lower().endswith((".jpg", ".jpeg"))
    picture.save(buf, format="JPEG" if jpeg else "PNG", **({"quality": 90} if jpeg else {}))
    with _writing("--annotate", out_path):
        atomic_write_bytes(out_path, [buf.getvalue()])


def _plot(records, classes, out_path, video):
    """The probabilities of the largest face of each frame read, against time."""
    from .plots import plot_emotions_over_time

    timed = all(r["time_s"] is not None for r in records)
    x = [r["time_s"] if timed else r["frame"] for r in records]
    probs = np.array([[r["faces"][0]["emotions"][c] for c in classes] if r["faces"]
                      else [np.nan] * len(classes) for r in records])
    with _writing("--plot", out_path):
        plot_emotions_over_time(x, probs, classes, out_path, os.path.basename(video),
                                "time (s)" if timed else "frame")
