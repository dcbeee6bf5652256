"""The autograd Tensor: an array (a native tensor, or a NumPy array on the reference
backend) with ``requires_grad``, ``.grad`` and the graph node that produced it."""

import numpy as np

from . import _native


def to_array(value):
    """A native float32 tensor for numbers, lists, NumPy arrays and DLPack producers."""
    if isinstance(value, _native.Tensor):
        return value
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray) and value.dtype in (np.int64, np.int32, np.uint8):
        return _native.as_tensor(np.ascontiguousarray(value))
    if hasattr(value, "__dlpack__") and not isinstance(value, np.ndarray):
        return _native.from_dlpack(value)
    return _native.as_tensor(np.ascontiguousarray(value, dtype=np.float32))


def host(array):
    """A NumPy array of a native tensor on any device (a view for CPU tensors, a copy for
    GPU ones), or of anything NumPy converts."""
    if isinstance(array, _native.Tensor) and array.device.is_cuda:
        array = array.cpu()
    return np.asarray(array)


CPU = _native.Device("cpu")


def device_of(array) -> _native.Device:
    """The device of a native tensor; the CPU for NumPy arrays."""
    return array.device if isinstance(array, _native.Tensor) else CPU


class Tensor:
    """``Tensor(data, requires_grad=False)``.

    ``data`` is kept as given when it is already a native tensor (no copy); NumPy input
    is viewed without a copy when it is C-contiguous float32.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "__weakref__")

    def __init__(self, data, requires_grad=False):
        self.data = to_array(data)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node = None

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """An op's output array as it is (a NumPy array on the reference backend)."""
        t = cls.__new__(cls)
        t.data, t.grad, t.requires_grad, t._node = array, None, requires_grad, None
        return t

    # ---- array facts ----
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def dtype(self):
        return str(self.data.dtype)

    @property
    def device(self):
        return device_of(self.data)

    @property
    def is_leaf(self):
        return self._node is None

    def to(self, device):
        """The data on ``device`` ('cpu', 'cuda', 'cuda:N'), cut from the graph (inputs and
        labels are moved this way; modules move with ``Module.to``)."""
        return Tensor(self.data.to(device)) if isinstance(self.data, _native.Tensor) else \
            Tensor(to_array(self.data).to(device))

    def numpy(self):
        """A NumPy view of the data (CPU), or a copy of GPU data."""
        return host(self.data)

    def __array__(self, dtype=None, copy=None):
        a = host(self.data)
        return a.astype(dtype) if dtype is not None else a

    def item(self):
        return float(host(self.data).reshape(-1)[0])

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def backward(self, grad=None):
        """Back-propagates from this tensor (a scalar loss unless ``grad`` is given)."""
        from .function import backward

        backward(self, grad)

    def reshape(self, *shape):
        from .ops.shape import reshape

        return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list))
                       else shape)

    def __repr__(self):
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"tfe.Tensor(shape={self.shape}, dtype={self.dtype}{flag})"


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (requires_grad=True)."""

    __slots__ = ()

    def __init__(self, data):
        super().__init__(data, requires_grad=True)
