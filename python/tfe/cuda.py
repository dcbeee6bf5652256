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
