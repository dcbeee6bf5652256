"""Listing data folders: which entries are images of the data set and which are not.

Copies of data sets carry entries that are not data: the hidden and system entries left by
archivers and file managers (``__MACOSX/`` from macOS zips, ``.DS_Store``, ``Thumbs.db``,
``desktop.ini``, Synology's ``@eaDir/``, AppleDouble ``._*`` files, ...) and files such as
licences and READMEs. They must not become a class or a person, and they must not be
passed over silently either: each loader counts what it passed over (``Passed``) and
prints one notice line saying how many, with an example.
"""

from __future__ import annotations

import os

__all__ = ["IMAGE_EXTENSIONS", "Passed", "SYSTEM_NAMES", "is_hidden_or_system",
           "list_folder", "require_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pnm", ".gif", ".bmp", ".tif",
                    ".tiff")

# Compared case-insensitively. Names starting with "." are hidden on every system.
SYSTEM_NAMES = frozenset(n.lower() for n in (
    "__MACOSX", "Thumbs.db", "ehthumbs.db", "desktop.ini", "@eaDir", "$RECYCLE.BIN",
    "System Volume Information", "lost+found", "Icon\r"))


def is_hidden_or_system(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def require_folder(path) -> str:
    """``path`` as a string; FileNotFoundError / NotADirectoryError naming it otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such folder")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{path}: is a file, not a folder")
    return path


class Passed:
    """Entries a loader did not use: hidden/system ones and other files."""

    def __init__(self):
        self.hidden: list[str] = []
        self.other: list[str] = []

    def notice(self, where) -> str | None:
        """One line saying what was passed over, or None when nothing was."""
        parts = []
        for items, what in ((self.hidden, "hidden/system"),
                            (self.other, "non-image or misplaced")):
            if items:
                parts.append(f"{len(items)} {what} entr{'y' if len(items) == 1 else 'ies'} "
                             f"(e.g. {items[0]})")
        return f"{where}: ignored " + " and ".join(parts) if parts else None


def list_folder(folder, passed: Passed, subfolders_used=True, images_used=True):
    """(sorted subfolder names, sorted image file names) of ``folder``. Hidden/system
    entries, and entries of a kind the caller does not use (subfolders or images, by the
    flags, and every other file), are recorded in ``passed``."""
    dirs, images = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if is_hidden_or_system(name):
            passed.hidden.append(path)
        elif os.path.isdir(path):
            if subfolders_used:
                dirs.append(name)
            else:
                passed.other.append(path)
        elif name.lower().endswith(IMAGE_EXTENSIONS) and images_used:
            images.append(name)
        else:
            passed.other.append(path)
    return dirs, images

