"""The image files under the folders given to ``tfe-embed``."""

from __future__ import annotations

import os

from ..data.listing import IMAGE_EXTENSIONS, is_hidden_or_system


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not is_hidden_or_system(name)


def image_files(roots) -> list[str]:
    """Every image file under ``roots`` (folders, walked recursively, or image files), each
    once, in a stable order; hidden and system entries (data/listing.py) are skipped. FileNotFoundError
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
            dirs[:] = sorted(d for d in dirs if not is_hidden_or_system(d))
            for name in sorted(files):
                if _is_image(name):
                    take(os.path.join(folder, name))
    return out
