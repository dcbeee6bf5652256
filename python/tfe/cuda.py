"""CUDA availability, as ``torch.cuda`` users expect it."""

from . import _native


def is_built() -> bool:
    """True when this installation was compiled with the CUDA backend."""
    return _native.cuda_built()


def is_available() -> bool:
    """True when the CUDA backend is built and a GPU with a working driver is present."""
    return _native.cuda_device_count() > 0


def device_count() -> int:
    return _native.cuda_device_count()


def unavailable_reason() -> str:
    """Why :func:`is_available` is False ('' when it is True)."""
    return _native.cuda_unavailable_reason()


def synchronize(device: int = 0) -> None:
    _native.cuda_synchronize(device)


def memory_stats(device: int = 0) -> dict:
    """``{"in_use": bytes held by live tensors, "reserved": bytes the caching pool holds}``."""
    return _native.cuda_memory_stats(device)


def empty_cache(device: int = 0) -> None:
    """Returns the caching pool's unused device memory to the driver."""
    _native.cuda_empty_cache(device)


class graph:
    """``with tfe.cuda.graph(device) as g: <engine work>`` records the work instead of
    running it; ``g.replay()`` then runs it again with the same tensors (addresses).

    Rules of a capture: no host<->device copies and no reading of values on the host
    inside the block; tensors created inside belong to the graph and hold the results of
    the latest replay; every dropout in the block draws a fresh mask at each replay.
    """

    def __init__(self, device: int = 0):
        self.device = device
        self._graph = None

    def __enter__(self):
        _native.cuda_capture_begin(self.device)
        try:
            _native.cuda_advance_dropout_offset(self.device)
        except BaseException:
            _native.cuda_capture_end(self.device)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        g = _native.cuda_capture_end(self.device)
        if exc_type is None:
            self._graph = g
        return False

    def reset(self) -> None:
        """Destroys the recording. Tensors created in it and still alive become ordinary
        tensors (freed with their last reference); drop the graph before them."""
        self._graph = None

    def replay(self) -> None:
        if self._graph is None:
            raise RuntimeError("[cuda.graph] nothing was captured")
        self._graph.replay()
