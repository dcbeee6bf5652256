"""Which implementation the autograd ops call: the native kernels (default) or the
NumPy/CuPy reference, switched in to check a whole model against the executable spec.

Both expose the same functions (``conv2d_forward``, ``batchnorm_backward``, ...) with
the same arguments and results; see ``tfe.reference``.
"""

import contextlib

import numpy as np

from . import _native


class _Reference:
    """The reference ops, fed NumPy views of native tensors (no copies)."""

    def __init__(self):
        from . import reference

        self._ref = reference

    def __getattr__(self, name):
        fn = getattr(self._ref, name)

        def call(*args, **kwargs):
            args = [_as_numpy(a) for a in args]
            kwargs = {k: _as_numpy(v) for k, v in kwargs.items()}
            return fn(*args, **kwargs)

        return call


def _as_numpy(a):
    if isinstance(a, _native.Tensor):
        return np.asarray(a)
    if isinstance(a, (list, tuple)):
        return type(a)(_as_numpy(x) for x in a)
    return a


_backends = {"native": _native}
_current = _native


def current():
    """The module-like object whose ``<op>_forward``/``<op>_backward`` functions run ops."""
    return _current


def name() -> str:
    return "native" if _current is _native else "reference"


@contextlib.contextmanager
def use(backend: str):
    """``with tfe.backend.use("reference"): ...`` runs every op on the reference."""
    global _current
    if backend not in ("native", "reference"):
        raise ValueError(f"[backend] unknown backend {backend!r} (native or reference)")
    if backend == "reference" and "reference" not in _backends:
        _backends["reference"] = _Reference()
    previous, _current = _current, _backends[backend]
    try:
        yield
    finally:
        _current = previous
