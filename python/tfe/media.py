"""What ``tfe-predict`` reads: image files, folders of them (recursively) and videos.

``expand(paths)`` turns the command line into a list of files: a folder becomes its
images and videos, sorted, hidden and system entries skipped (data.listing), other files
counted in one notice. ``frames(path, every)`` yields the pictures of one input: an image
once, a video's every ``every``-th frame with its index and time, read with OpenCV.
Errors name the file (``InputError``), so one bad file does not stop a batch.
"""

from __future__ import annotations

import os

from .data.images import read_image
from .data.listing import IMAGE_EXTENSIONS, Passed, is_hidden_or_system
from .errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def is_video(path) -> bool:
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def expand(paths, log=print):
    """The files named by ``paths``: files as given, folders walked recursively in sorted
    order (images and videos only). A missing path, or a folder without images or videos,
    is kept as it is, to fail on its own later."""
    files, passed = [], Passed()
    for path in map(os.fspath, paths):
        if not os.path.isdir(path):
            files.append(path)
            continue
        before = len(files)
        for root, dirs, names in os.walk(path):
            for d in list(dirs):
                if is_hidden_or_system(d):
                    passed.hidden.append(os.path.join(root, d))
            dirs[:] = sorted(d for d in dirs if not is_hidden_or_system(d))
            for name in sorted(names):
                full = os.path.join(root, name)
                if is_hidden_or_system(name):
                    passed.hidden.append(full)
                elif name.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS):
                    files.append(full)
                else:
                    passed.other.append(full)
        if len(files) == before:
            files.append(path)  # to fail on its own: a folder without images or videos
    notice = passed.notice("tfe-predict")
    if notice:
        log(notice)
    return files


def frames(path, every: int = 1):
    """(frame index or None, time in s or None, uint8 image) of one input file: an image
    once; a video's frames 0, every, 2·every, ... Raises InputError naming the file."""
    if os.path.isdir(path):
        raise InputError(f"{path}: a folder without images or videos in it")
    if not is_video(path):
        yield None, None, read_image(path)  # BadImage (an InputError) names the file
        return
    yield from _video_frames(path, every)


def _video_frames(path, every):
    import cv2

    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    # FFmpeg's own decoder messages ("overread 8") name no file; tfe's error line does.
    # Read when a capture opens, so setting it here is in time; a user's setting wins.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cap = cv2.VideoCapture(os.fspath(path))
    try:
        if not cap.isOpened():
            raise InputError(f"{path}: cannot read video (not a format OpenCV's FFmpeg opens)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and fps > 0 else None
        index = 0
        while True:
            if index % every:  # skip without decoding the picture
                if not cap.grab():
                    break
            else:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield index, (index / fps if fps else None), bgr[..., ::-1]
            index += 1
        if index == 0:
            raise InputError(f"{path}: cannot read video (no frame could be decoded)")
        stated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if stated > 0 and index < stated - 1:  # containers may count one frame too many
            raise InputError(f"{path}: truncated video: {index} of its {stated} frames "
                             "decoded (the rows of those are kept)")
    finally:
        cap.release()
