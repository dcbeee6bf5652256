"""Module: parameters, buffers and sub-modules registered by attribute assignment;
train()/eval(); state_dict()/load_state_dict() with NumPy arrays keyed by dotted names."""

from collections import OrderedDict

import numpy as np

from .. import _native
from ..tensor import CPU, Parameter, Tensor, device_of, host, to_array


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """Non-trainable state saved with the model (e.g. batch-norm running statistics)."""
        value = to_array(array)
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    def forward(self, *args):
        raise NotImplementedError

    def __call__(self, *args):
        return self.forward(*args)

    # ---- traversal ----
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}{name}.")

    def named_parameters(self):
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                yield prefix + name, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for prefix, m in self.named_modules():
            for name, b in m._buffers.items():
                yield prefix + name, b

    def children(self):
        return list(self._modules.values())

    # ---- modes ----
    def train(self, mode=True):
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # ---- device ----
    @property
    def device(self):
        """Where the parameters live (a tfe.Device; the CPU for a model without any)."""
        params = self.parameters()
        return params[0].device if params else CPU

    def to(self, device):
        """Moves every parameter and buffer to ``device`` in place (the Parameter objects
        stay the same, so an optimiser built before the move keeps working)."""
        for _, m in self.named_modules():
            for p in m._parameters.values():
                p.data = p.data.to(device)
                p.grad = None
            for name, b in list(m._buffers.items()):
                moved = b.to(device)
                m._buffers[name] = moved
                object.__setattr__(m, name, moved)
        return self

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def cpu(self):
        return self.to("cpu")

    # ---- state ----
    def state_dict(self):
        """Name -> NumPy copy of every parameter and buffer."""
        out = OrderedDict()
        for name, p in self.named_parameters():
            out[name] = np.array(host(p.data), copy=True)
        for name, b in self.named_buffers():
            out[name] = np.array(host(b), copy=True)
        return out

    def load_state_dict(self, state, strict=True):
        """Copies values into the existing tensors (shapes must match)."""
        own = dict(self.named_parameters())
        own_buffers = dict(self.named_buffers())
        missing = [k for k in list(own) + list(own_buffers) if k not in state]
        unexpected = [k for k in state if k not in own and k not in own_buffers]
        if strict and (missing or unexpected):
            raise KeyError(f"[load_state_dict] missing {missing}, unexpected {unexpected}")
        for name, value in state.items():
            if name in own:
                target = own[name].data
            elif name in own_buffers:
                target = own_buffers[name]
            else:
                continue
            value = np.asarray(value)
            if value.shape != tuple(target.shape):
                raise ValueError(f"[load_state_dict] {name}: shape {value.shape} in the state, "
                                 f"{tuple(target.shape)} in the model")
            if device_of(target) == "cpu":
                np.asarray(target)[...] = value
            else:  # in place: the addresses stay valid for a captured CUDA graph
                target.copy_(np.ascontiguousarray(value, dtype=np.dtype(target.dtype)))
        return missing, unexpected

    def num_parameters(self):
        return sum(int(np.prod(p.shape)) for p in self.parameters())


class Sequential(Module):
    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)


def parameter(array) -> Parameter:
    return Parameter(_native.as_tensor(np.ascontiguousarray(array, dtype=np.float32)))


__all__ = ["Module", "Sequential", "Parameter", "Tensor", "parameter"]
