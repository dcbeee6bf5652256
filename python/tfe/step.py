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


class CrossEntropyObjective:
    """The loss of the expression and identity stages: softmax cross-entropy of the model's
    logits against hard labels [N] or soft targets [N, K].

    An objective says how a batch's targets ``y`` (one NumPy array per sample row) become
    the arrays the loss takes (``targets``), computes the loss and the logits that training
    accuracy is counted on (``loss``), and gives the class label of each row for that
    count, -1 for a row without one (``labels``)."""

    graphable = True  # one target array, so the step can be recorded as a CUDA graph

    def targets(self, y):
        return [y]

    def loss(self, model, x, targets):
        logits = model(x)
        return ops.cross_entropy(logits, targets[0]), logits

    def labels(self, y):
        return y if y.ndim == 1 else y.argmax(1)


class SideInputObjective(CrossEntropyObjective):
    """Cross-entropy for a model that takes a vector beside each image, ``model(x, side)``
    (models.GivenIdentityTFE): the target rows are [label | side], the label one column
    (a class index) or ``label_width`` soft-target columns."""

    graphable = False

    def __init__(self, label_width, soft):
        self.label_width, self.soft = int(label_width), bool(soft)

    def _label_part(self, y):
        part = y[:, :self.label_width]
        return np.ascontiguousarray(part, np.float32) if self.soft else \
            part[:, 0].astype(np.int64)

    def targets(self, y):
        return [self._label_part(y), np.ascontiguousarray(y[:, self.label_width:], np.float32)]

    def loss(self, model, x, targets):
        logits = model(x, Tensor(targets[1]))
        return ops.cross_entropy(logits, targets[0]), logits

    def labels(self, y):
        part = self._label_part(y)
        return part.argmax(1) if self.soft else part


def side_input_targets(imageset, mode="auto"):
    """(target rows [label | side], SideInputObjective) of an ImageSet with ``side``."""
    from .data import BatchLoader

    if imageset.side is None:
        raise ValueError(f"{imageset.name}: the model takes a vector beside each image and "
                         "this set has none (ImageSet.side)")
    labels = BatchLoader.resolve_targets(imageset, mode)
    soft = labels.ndim == 2
    part = labels if soft else labels[:, None].astype(np.float32)
    return (np.concatenate([part, imageset.side], axis=1).astype(np.float32),
            SideInputObjective(part.shape[1], soft))


class TrainStep:
    """``step(x, y) -> (loss, logits)`` for NumPy batches; the results are device arrays,
    valid until the next call. ``objective`` defaults to cross-entropy."""

    def __init__(self, model, optimizer, use_graph=True, objective=None):
        self.model, self.optimizer = model, optimizer
        self.objective = objective or CrossEntropyObjective()
        self.device = model.device
        self.use_graph = (use_graph and self.device.is_cuda
                          and self.objective.graphable)
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
        arrays = [to_array(a) for a in [x, *self.objective.targets(y)]]
        if self.device.is_cuda:
            arrays = [a.to(self.device) for a in arrays]
        return self._step(arrays[0], arrays[1:])

    def _step(self, xs, targets):
        loss, logits = self.objective.loss(self.model, Tensor(xs), targets)
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
        _native.cuda_synchronize(device.index)  # nothing of the eager steps may land inside
        self.graph = cuda.graph(device.index)
        with self.graph:
            self.loss, self.logits = step._step(self.x, [self.y])

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
