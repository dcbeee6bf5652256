"""SGD with momentum, weight decay and Nesterov, per-parameter-group learning rates (the
paper trains the ResNet and DeepID parts at different rates), and learning-rate schedules.

One native call updates every parameter of a group (``sgd_step``), so a step costs one
pass over the weights, not one Python call per tensor.
"""

import math

from . import _native, backend
from .tensor import host


class SGD:
    """``SGD(params_or_groups, lr, momentum=0, weight_decay=0, nesterov=False)``.

    ``params_or_groups``: a list of Parameters, or of dicts ``{"params": [...], "lr": ...,
    ...}`` whose keys override the defaults for that group (as in PyTorch).
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for g in groups:
            group = {**defaults, **g, "params": list(g["params"])}
            group["initial_lr"] = group["lr"]
            if not group["params"]:
                raise ValueError("[SGD] a parameter group is empty")
            self.param_groups.append(group)
        self.state = {}  # id(param) -> momentum buffer (native tensor)

    def zero_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self):
        b = backend.current()
        for g in self.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            bufs = None
            if g["momentum"] > 0:
                bufs = [self._buffer(p) for p in params]
            b.sgd_step([p.data for p in params], [p.grad for p in params], bufs, g["lr"],
                       g["momentum"], g["weight_decay"], g["nesterov"])

    def _buffer(self, p):
        buf = self.state.get(id(p))
        if buf is None:
            buf = _native.zeros(list(p.shape), device=p.device)
            self.state[id(p)] = buf
        return buf

    def state_dict(self):
        import numpy as np

        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        return {"momentum": {index[k]: np.array(host(v), copy=True)
                             for k, v in self.state.items()},
                "lr": [g["lr"] for g in self.param_groups]}

    def load_state_dict(self, state):
        import numpy as np

        params = [p for g in self.param_groups for p in g["params"]]
        for i, buf in state["momentum"].items():
            p = params[int(i)]
            self._buffer(p).copy_(np.ascontiguousarray(buf, dtype=np.float32))
        for g, lr in zip(self.param_groups, state["lr"]):
            g["lr"] = lr


class StepLR:
    """lr = initial_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma

    def set_epoch(self, epoch):
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * self.gamma ** (epoch // self.step_size)


class CosineLR:
    """lr = min_lr + (initial_lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2."""

    def __init__(self, optimizer, epochs, min_lr=0.0):
        self.optimizer, self.epochs, self.min_lr = optimizer, max(1, epochs), min_lr

    def set_epoch(self, epoch):
        t = min(epoch, self.epochs) / self.epochs
        for g in self.optimizer.param_groups:
            g["lr"] = self.min_lr + (g["initial_lr"] - self.min_lr) * (1 + math.cos(math.pi * t)) / 2
