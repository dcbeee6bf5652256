"""One SGD step on a batch (forward, cross-entropy, backward, update), run eagerly or, on a
GPU, as a captured CUDA graph.

Tiny 48x48 networks are launch-bound on a GPU: a ResNet18 step is a few hundred kernels
of a few microseconds each, so issuing them from Python costs more than running them. The
steady-state step is therefore recorded once into a CUDA graph and replayed per batch with
one launch; the batch is copied into the graph's fixed input buffers. A graph is recorded
per (input shape, learning rates): a new learning rate (once per epoch) or the smaller last
batch falls back to, or re-records, as needed. The first steps run eagerly so that
everything that must outlive a step (momentum buffers) exists before the recording.
"""

from __future__ import annotations

import numpy as np

from . import _native, ops
from .tensor import Tensor, to_array

EAGER_WARMUP_STEPS = 2


class TrainStep:
    """``step(x, y) -> (loss, logits)`` for NumPy batches; the results are device arrays,
    valid until the next call."""

    def __init__(self, model, optimizer, use_graph=True):
        self.model, self.optimizer = model, optimizer
        self.device = model.device
        self.use_graph = use_graph and self.device.startswith("cuda")
        self.steps = 0
        self._graph_key, self._graph = None, None

    def __call__(self, x: np.ndarray, y: np.ndarray):
        self.steps += 1
        if not self.use_graph or self.steps <= EAGER_WARMUP_STEPS:
            return self._eager(x, y)
        key = (x.shape, y.shape, str(y.dtype),
               tuple(g["lr"] for g in self.optimizer.param_groups))
        if key != self._graph_key:
            if self._graph is not None:
                self._graph.release()
            self._graph = _Recorded(self, x, y)
            self._graph_key = key
        return self._graph.run(x, y)

    def _eager(self, x, y):
        xs, ys = to_array(x), to_array(y)
        if self.device != "cpu":
            xs, ys = xs.to(self.device), ys.to(self.device)
        return self._step(xs, ys)

    def _step(self, xs, ys):
        logits = self.model(Tensor(xs))
        loss = ops.cross_entropy(logits, ys)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss, logits


class _Recorded:
    """The step recorded for one batch shape, with its fixed input buffers."""

    def __init__(self, step: TrainStep, x, y):
        from . import cuda

        device = step.device
        self.x = _native.empty(list(x.shape), "float32", device)
        self.y = _native.empty(list(y.shape), str(y.dtype), device)
        index = int(device.split(":")[1]) if ":" in device else 0
        _native.cuda_synchronize(index)  # nothing of the eager steps may land inside
        self.graph = cuda.graph(index)
        with self.graph:
            self.loss, self.logits = step._step(self.x, self.y)

    def release(self):
        """The graph first, then its tensors: memory a destroyed graph leaves allocated
        is freed by the tensors that hold it."""
        self.graph.reset()
        self.loss = self.logits = self.x = self.y = None

    def run(self, x, y):
        self.x.copy_(np.ascontiguousarray(x, dtype=np.float32))
        self.y.copy_(np.ascontiguousarray(y))
        self.graph.replay()
        return self.loss, self.logits
