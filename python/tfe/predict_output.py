"""Where tfe-predict's rows go: a table, CSV or JSON on stdout, or ``--out FILE`` (CSV, or
JSON Lines for .jsonl) written as each input finishes, with a ledger ``FILE.done`` that
makes an interrupted run resumable.

The ledger has one line per finished input: the size of FILE once that input's rows were
in it, a tab, the input's path; ledger lines reach the disk only after the rows they
count (at most every SYNC_EVERY_S seconds). Resuming truncates FILE to the
last recorded size (rows of an input left half-written are written again) and skips the
inputs already listed, so that the file ends as an uninterrupted run's would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time

from .errors import InputError

# Rows and ledger reach the disk (fsync) at most this often: an fsync per 48x48 image
# would cost more than classifying it; a crash loses at most this much finished work.
SYNC_EVERY_S = 1.0


def top_label(face):
    return max(face["emotions"], key=face["emotions"].get)


class Output:
    """``write(FileResult)``, then ``close()``; ``done``: the inputs a previous run of the
    same ``--out`` finished."""

    def __init__(self, classes, out=None, fmt="table"):
        self.done, self.ledger = set(), None
        self.unsynced, self.synced_at = [], time.monotonic()
        self.stream = sys.stdout
        if out:
            fmt = out_format(out)
            self.stream = self._open(out)
        self.writer = WRITERS[fmt](classes, self.stream)
        self.writer.started = bool(self.done)  # the header is in the file already

    def _open(self, out):
        ledger = out + ".done"
        end = 0
        try:
            if os.path.exists(ledger):
                with open(ledger, encoding="utf-8") as f:
                    for line in f:
                        size, tab, path = line.rstrip("\n").partition("\t")
                        if tab and size.isdigit():
                            self.done.add(path)
                            end = int(size)
                stream = open(out, "a+", encoding="utf-8", newline="")
                stream.truncate(end)  # rows of an input left unfinished are written again
            elif os.path.exists(out) and os.path.getsize(out):
                raise InputError(f"--out {out}: exists, and there is no ledger {ledger} to "
                                 "resume from; remove it or choose another file")
            else:
                stream = open(out, "w", encoding="utf-8", newline="")
            self.ledger = open(ledger, "a", encoding="utf-8")
        except OSError as e:
            raise InputError(f"--out {out}: cannot write it ({e.strerror or e})") from None
        return stream

    def write(self, result):
        for record in result.records:
            self.writer.write(record)
        if self.ledger is not None:
            self.unsynced.append(f"{self.stream.tell()}\t{result.path}\n")
            if time.monotonic() - self.synced_at >= SYNC_EVERY_S:
                self._sync()

    def _sync(self):
        """Rows to disk first, then the ledger lines of the inputs they complete."""
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.ledger.write("".join(self.unsynced))
        self.ledger.flush()
        os.fsync(self.ledger.fileno())
        self.unsynced, self.synced_at = [], time.monotonic()

    def close(self):
        self.writer.close()
        if self.ledger is not None:
            self._sync()
            self.stream.close()
            self.ledger.close()


def out_format(out):
    lower = out.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith(".jsonl"):
        return "jsonl"
    raise InputError(f"--out {out}: expected a .csv or .jsonl file (rows are appended as "
                     "inputs finish, so that an interrupted run resumes)")


def _json_record(record):
    rec = {k: v for k, v in record.items() if v is not None or k not in ("frame", "time_s")}
    rec["faces"] = [{**f, "label": top_label(f)} for f in record["faces"]]
    return rec


class JsonWriter:
    """A JSON array, one element per image or frame, written as the results come."""

    def __init__(self, classes, stream):
        self.stream, self.started = stream, False

    def write(self, record):
        text = json.dumps(_json_record(record), indent=2)
        self.stream.write((",\n" if self.started else "[\n") + text)
        self.started = True
        self.stream.flush()

    def close(self):
        self.stream.write("\n]\n" if self.started else "[]\n")


class JsonLinesWriter:
    """One JSON object per line, one line per image or frame."""

    def __init__(self, classes, stream):
        self.stream, self.started = stream, False

    def write(self, record):
        self.stream.write(json.dumps(_json_record(record)) + "\n")

    def close(self):
        pass


class CsvWriter:
    """One row per face: image, frame, time_s, face, box, the probabilities, the label."""

    def __init__(self, classes, stream):
        self.classes, self.stream, self.started = classes, stream, False

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
                        *(f"{face['emotions'][c]:.6f}" for c in self.classes), top_label(face)])
        self.stream.write(buf.getvalue())

    def close(self):
        pass


class TableWriter:
    """The paper's Table 1 form: one row per face (image@frame for videos)."""

    def __init__(self, classes, stream):
        self.classes, self.stream, self.started = classes, stream, False

    def write(self, record):
        name = os.path.basename(record["image"])
        if record["frame"] is not None:
            name += f"@{record['frame']}"
        for i, face in enumerate(record["faces"]):
            if not self.started:
                print(f"{'image':24s}{'face':>5s}  {'box (x, y, w, h)':20s}" +
                      "".join(f"{c[:8]:>10s}" for c in self.classes) + "  prediction",
                      file=self.stream)
                self.started = True
            print(f"{name:24s}{i:>5d}  {', '.join(map(str, face['box'])):20s}" +
                  "".join(f"{face['emotions'][c]:10.4f}" for c in self.classes) +
                  f"  {top_label(face)}", file=self.stream, flush=True)

    def close(self):
        pass


WRITERS = {"json": JsonWriter, "jsonl": JsonLinesWriter, "csv": CsvWriter,
           "table": TableWriter}
