"""Finding the teacher's model files and checking that the optional extra is installed.

Nothing here imports dlib, so a missing extra is reported in one line before any work
starts. face_recognition_models is located, not imported: its ``__init__`` needs
``pkg_resources``, which recent setuptools no longer ships.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os

from .recipe import FACE_MODEL, LANDMARK_MODEL

INSTALL_HINT = 'pip install "tfe[teacher]" (from a checkout: pip install ".[teacher]")'


class TeacherUnavailable(RuntimeError):
    """The optional extra is missing or its model files are not the recipe's."""


def file_sha256(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_extra_installed() -> None:
    missing = [name for name in ("dlib", "face_recognition_models")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise TeacherUnavailable(f"the teacher needs the optional extra 'teacher' (missing: "
                                 f"{', '.join(missing)}): {INSTALL_HINT}")


def model_paths(verify: bool = True) -> dict:
    """{"face_model": path, "landmark_model": path}; with ``verify``, each file's SHA-256
    must be the one the recipe is defined with."""
    check_extra_installed()
    spec = importlib.util.find_spec("face_recognition_models")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    paths = {}
    for key, model in (("face_model", FACE_MODEL), ("landmark_model", LANDMARK_MODEL)):
        path = os.path.join(folder, model["file"])
        if not os.path.isfile(path):
            raise TeacherUnavailable(f"{path}: model file missing from face_recognition_models "
                                     f"(reinstall it: {INSTALL_HINT})")
        if verify and file_sha256(path) != model["sha256"]:
            raise TeacherUnavailable(f"{path}: not the model file this teacher is defined with "
                                     f"(SHA-256 differs from {model['sha256'][:16]}...)")
        paths[key] = path
    return paths
