"""Mini-batches for training and evaluation, prepared in a background thread.

``BatchLoader`` turns an ``ImageSet`` into epochs of (x float32 [B, 1, H, W] C-contiguous,
y) batches: gather, augment (optional), normalise. The shuffle of epoch e is a function of
(seed, e) and the augmentation of batch b of (augmenter seed, e, b), so a run is
reproducible and can be resumed at an epoch boundary with ``set_epoch``.

A producer thread keeps up to ``prefetch`` batches ready in a queue, so that augmentation
(NumPy, which releases the GIL inside its loops) overlaps the training step's native
kernels. The thread is stopped and joined when the epoch ends, when the iterator is closed
or garbage-collected (e.g. a ``break`` out of the loop), when a new epoch starts, or on
``loader.close()``; an exception in the producer is re-raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
import weakref

import numpy as np

from .imageset import ImageSet
from .transforms import Augmenter, Normalizer

__all__ = ["BatchLoader"]

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class BatchLoader:
    """Iterate an ImageSet in mini-batches.

    Args:
        imageset: the data.
        batch_size: images per batch.
        normalizer: maps uint8/float gray levels [B, H, W] to float32 [B, 1, H, W].
        augmenter: optional ``Augmenter`` applied before normalisation (training only).
        shuffle: a fresh permutation per epoch, from (seed, epoch); else the stored order.
        seed: shuffle seed (the augmenter has its own).
        drop_last: skip a final partial batch (keeps BatchNorm statistics on full batches).
        prefetch: batches prepared ahead by the background thread; 0 = no thread.
        targets: "auto" (soft_labels when present, else labels), "hard" (int64 [B]; the
            majority vote of soft labels if there are no hard ones), "soft" (float32 [B, K];
            one-hot from hard labels if there are no soft ones), "none" (y is None), or an
            array with one row per image (given to the training objective as it is).

    Each ``iter(loader)`` runs the current epoch and then advances it by one;
    ``set_epoch(e)`` makes the next iteration run epoch e.
    """

    def __init__(
        self,
        imageset: ImageSet,
        batch_size: int,
        normalizer: Normalizer,
        augmenter: Augmenter | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        prefetch: int = 2,
        targets: str = "auto",
    ):
        if batch_size < 1:
            raise ValueError("batch_size: must be at least 1")
        if prefetch < 0:
            raise ValueError("prefetch: must be >= 0")
        if isinstance(targets, np.ndarray):
            if len(targets) != len(imageset):
                raise ValueError(f"targets: {len(targets)} rows for {len(imageset)} images")
        elif targets not in ("auto", "hard", "soft", "none"):
            raise ValueError(f"targets: expected auto/hard/soft/none, got {targets!r}")
        self.imageset = imageset
        self.batch_size = int(batch_size)
        self.normalizer = normalizer
        self.augmenter = augmenter
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.prefetch = int(prefetch)
        self._targets = self.resolve_targets(imageset, targets)
        self._epoch = 0
        self._active = weakref.WeakSet()

    @staticmethod
    def resolve_targets(s: ImageSet, targets):
        """The per-image target rows the loader gives for a ``targets`` mode (or array)."""
        if isinstance(targets, np.ndarray):
            return targets
        if targets == "auto":
            if s.soft_labels is not None:
                targets = "soft"
            else:
                targets = "hard" if s.labels is not None else "none"
        if targets == "none":
            return None
        if s.labels is None and s.soft_labels is None:
            raise ValueError("labels: the set is unlabeled; use targets='none'")
        if targets == "hard":
            if s.labels is not None:
                return s.labels
            return s.soft_labels.argmax(axis=1).astype(np.int64)
        if s.soft_labels is not None:
            return s.soft_labels
        return np.eye(s.num_classes, dtype=np.float32)[s.labels]

    # ------------------------------------------------------------------ epochs

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will run."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.imageset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """int64 [N]: the sample order of an epoch (all samples, before dropping the tail)."""
        n = len(self.imageset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def batch(self, epoch: int, index: int, order: np.ndarray | None = None):
        """Batch ``index`` of ``epoch``, computed in the calling thread: (x, y)."""
        if order is None:
            order = self.order(epoch)
        idx = order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.imageset.images[idx]
        if self.augmenter is not None:
            images = self.augmenter(images, epoch, index)
        x = self.normalizer.apply(images)
        y = None if self._targets is None else self._targets[idx]
        return x, y

    # ------------------------------------------------------------------ iteration

    def __iter__(self):
        for it in list(self._active):  # one epoch at a time: stop a still-running one
            it.close()
        epoch = self._epoch
        self._epoch += 1
        if self.prefetch == 0:
            return self._serial(epoch)
        it = _EpochIterator(self, epoch)
        self._active.add(it)
        return it

    def _serial(self, epoch: int):
        order = self.order(epoch)
        for b in range(len(self)):
            yield self.batch(epoch, b, order)

    def close(self) -> None:
        """Stop and join any background thread of this loader."""
        for it in list(self._active):
            it.close()

    def __repr__(self) -> str:
        return (f"BatchLoader({self.imageset.name!r}, {len(self)} batches of {self.batch_size}, "
                f"shuffle={self.shuffle}, augment={self.augmenter is not None}, "
                f"epoch={self._epoch})")


class _EpochIterator:
    """One epoch, produced by a daemon thread into a bounded queue."""

    def __init__(self, loader: BatchLoader, epoch: int):
        self.epoch = epoch
        self._queue: queue.Queue = queue.Queue(maxsize=loader.prefetch)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=_produce, args=(loader, epoch, self._queue, self._stop),
            name=f"tfe-batches-e{epoch}", daemon=True,
        )
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self.close()
                    raise RuntimeError("batch producer thread ended without finishing the epoch")
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.exc
        return item

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def close(self) -> None:
        """Stop the producer, drop prepared batches and join the thread (idempotent)."""
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _produce(loader: BatchLoader, epoch: int, q: queue.Queue, stop: threading.Event) -> None:
    """Producer thread body: every batch of the epoch, then _END (or a _Failure)."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    try:
        order = loader.order(epoch)
        for b in range(len(loader)):
            if stop.is_set() or not put(loader.batch(epoch, b, order)):
                return
        put(_END)
    except BaseException as exc:  # re-raised in the consumer
        put(_Failure(exc))
