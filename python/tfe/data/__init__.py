"""tfe.data: image sets, the built-in synthetic faces, preprocessing and batching.

Pure NumPy (no native module needed). A data source produces an ``ImageSet``; training
fits a ``Normalizer`` on its training split only, and iterates a ``BatchLoader`` with an
optional ``Augmenter``; prediction on arbitrary images goes through ``resize_gray``.
``SyntheticFaces`` makes every stage runnable with no download.
"""

from .imageset import ImageSet
from .loader import BatchLoader
from .synthetic import (
    ACTIONS,
    CLASSES,
    EXPRESSION_DELTAS,
    RESTING_LOOKS,
    Identity,
    SyntheticFaces,
    default_splits,
)
from .transforms import Augmenter, Normalizer, resize_gray, to_gray

__all__ = [
    "ACTIONS",
    "Augmenter",
    "BatchLoader",
    "CLASSES",
    "EXPRESSION_DELTAS",
    "Identity",
    "ImageSet",
    "Normalizer",
    "RESTING_LOOKS",
    "SyntheticFaces",
    "default_splits",
    "resize_gray",
    "to_gray",
]
