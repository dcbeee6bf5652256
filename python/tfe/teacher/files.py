"""The image files under the folders given to ``tfe-embed``."""

from __future__ import annotations

import os

from ..data.folders import IMAGE_EXTENSIONS

# Folders that archivers, file managers and operating systems add beside real data; their
# "images" are resource forks and thumbnails, not faces.
_SYSTEM_FOLDERS = {"__MACOSX", "__pycache__", "@eaDir", "$RECYCLE.BIN",
                   "System Volume Information", "lost+found"}


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def image_files(roots) -> list[str]:
    """Every image file under ``roots`` (folders, walked recursively, or image files), each
    once, in a stable order; hidden and system folders are skipped. FileNotFoundError
    names a root that does not exist."""
    seen, out = set(), []

    def take(path):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)

    for root in map(os.fspath, roots):
        if os.path.isfile(root):
            take(root)
            continue
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root}: no such folder or file")
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs
                             if not d.startswith(".") and d not in _SYSTEM_FOLDERS)
            for name in sorted(files):
                if _is_image(name):
                    take(os.path.join(folder, name))
    return out
