"""ImageSet: the one in-memory container every tfe data source produces.

A data source (the synthetic generator, CK+, FER+, identity folders) ends as an ``ImageSet``:
grayscale uint8 images of one size, an optional class index per image, the class names in
label order, and the person each image shows. The person column is what makes
subject-independent splits and folds possible (no person in both train and test), and what
the identity (DeepID) pre-training uses as its label. Soft labels carry FER+-style
crowd-vote distributions. ``synthetic`` travels with the data so that every figure computed
from generated faces can be labelled as such.

Validation happens once, in ``__post_init__``; every error names the offending field so a
loader bug is found at its source, not three layers later inside a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ImageSet"]


@dataclass(eq=False)
class ImageSet:
    """Grayscale images with labels and the person shown in each.

    Attributes:
        images: uint8 [N, H, W] grayscale images.
        labels: int64 [N] class index into ``classes``, or None for an unlabeled set.
        classes: K class names in label order (for an identity set: the person names).
        subjects: str [N], the person id of each image.
        name: a short name of the set ("synthetic-train", "ckplus-fold3-test", ...).
        soft_labels: float32 [N, K] probability targets (e.g. FER+ vote distributions), or None.
        synthetic: True when the images come from the procedural generator.
        side: float32 [N, D], a vector given with each image (e.g. a face teacher's
            descriptor) for models that take one beside the image, or None.
        sources: str [N], the file each image was read from (what a teacher cache keyed by
            file content looks up), or None (generated images, CSV pixels).
    """

    images: np.ndarray
    labels: np.ndarray | None
    classes: list[str]
    subjects: np.ndarray
    name: str = "unnamed"
    soft_labels: np.ndarray | None = None
    synthetic: bool = False
    sources: np.ndarray | None = None
    side: np.ndarray | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim != 3:
            raise ValueError(f"images: expected a [N, H, W] array, got shape {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"images: expected dtype uint8, got {images.dtype}")
        n = images.shape[0]
        self.images = images

        self.classes = [str(c) for c in self.classes]
        k = len(self.classes)

        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.ndim != 1 or labels.shape[0] != n:
                raise ValueError(f"labels: expected shape ({n},), got {labels.shape}")
            if labels.size and not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels: expected integer class indices, got {labels.dtype}")
            labels = labels.astype(np.int64, copy=False)
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise ValueError(
                    f"labels: values must lie in [0, {k}) (len(classes) = {k}), "
                    f"got range [{labels.min()}, {labels.max()}]"
                )
            self.labels = labels

        subjects = np.asarray(self.subjects)
        if subjects.ndim != 1 or subjects.shape[0] != n:
            raise ValueError(f"subjects: expected shape ({n},), got {subjects.shape}")
        self.subjects = subjects.astype(str, copy=False)

        if self.soft_labels is not None:
            soft = np.asarray(self.soft_labels)
            if soft.shape != (n, k):
                raise ValueError(f"soft_labels: expected shape ({n}, {k}), got {soft.shape}")
            soft = soft.astype(np.float32, copy=False)
            if soft.size and (not np.all(np.isfinite(soft)) or soft.min() < 0):
                raise ValueError("soft_labels: values must be finite and non-negative")
            self.soft_labels = soft

        if self.sources is not None:
            sources = np.asarray(self.sources)
            if sources.shape != (n,):
                raise ValueError(f"sources: expected shape ({n},), got {sources.shape}")
            self.sources = sources.astype(str, copy=False)

        if self.side is not None:
            side = np.asarray(self.side, np.float32)
            if side.ndim != 2 or side.shape[0] != n or not np.all(np.isfinite(side)):
                raise ValueError(f"side: expected finite float32 [{n}, D], got shape {side.shape}")
            self.side = side

        self.name = str(self.name)
        self.synthetic = bool(self.synthetic)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def people(self) -> np.ndarray:
        """The distinct person ids, sorted."""
        return np.unique(self.subjects)

    def subset(self, indices, name: str | None = None) -> "ImageSet":
        """A new ImageSet with the selected images (int indices or a boolean mask [N]).

        Arrays are copied (fancy indexing), so the subset owns its memory.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"indices: boolean mask must have shape ({len(self)},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        return ImageSet(
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            classes=list(self.classes),
            subjects=self.subjects[idx],
            name=self.name if name is None else name,
            soft_labels=None if self.soft_labels is None else self.soft_labels[idx],
            synthetic=self.synthetic,
            sources=None if self.sources is None else self.sources[idx],
            side=None if self.side is None else self.side[idx],
        )

    def with_side(self, side) -> "ImageSet":
        """The same images with ``side`` as their given vectors (arrays shared)."""
        return ImageSet(self.images, self.labels, self.classes, self.subjects, self.name,
                        self.soft_labels, self.synthetic, self.sources, side)

    def class_counts(self) -> np.ndarray:
        """int64 [K]: images per class (majority vote of ``soft_labels`` when unlabeled)."""
        if self.labels is not None:
            hard = self.labels
        elif self.soft_labels is not None:
            hard = self.soft_labels.argmax(axis=1)
        else:
            raise ValueError("labels: an unlabeled set (no labels or soft labels) has no counts")
        return np.bincount(hard, minlength=self.num_classes).astype(np.int64)

    def __repr__(self) -> str:
        h, w = self.image_size
        kind = "synthetic " if self.synthetic else ""
        return (
            f"ImageSet({kind}{self.name!r}: {len(self)} images {h}x{w}, "
            f"{self.num_classes} classes, {len(self.people())} people)"
        )
