"""Array-module selection for the reference: NumPy by default, CuPy for CuPy arrays.

CuPy is optional. It is imported only when an argument already is a CuPy array (which
implies CuPy is installed and imported by the caller), so importing the reference never
imports CuPy and never fails on a machine without it.
"""
import sys

import numpy as np


def _is_cupy_array(a):
    return type(a).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """Return the array module (``cupy`` or ``numpy``) that fits the given arrays.

    cupy if any argument is a cupy array and cupy is importable, else numpy. Arguments
    that are not arrays (None, Python scalars, lists) are ignored.
    """
    for a in arrays:
        if _is_cupy_array(a):
            cupy = sys.modules.get("cupy")
            if cupy is None:
                try:
                    import cupy  # noqa: F811  (only reached when a cupy array exists)
                except ImportError:  # pragma: no cover - cannot have the array then
                    return np
            return cupy
    return np
