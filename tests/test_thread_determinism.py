"""Training does not depend on the thread count: every reduction is split in a way fixed by
the shapes alone (conv2d's weight gradient in fixed slots, batch statistics per channel on
one thread, ...), so two SGD steps with momentum give the same bits on 1, 2 and 3 threads,
also with fewer images than threads."""

import numpy as np
import pytest
from helpers import num_threads

from tfe import models, optim
from tfe import random as tfe_random
from tfe.step import TrainStep

MODELS = {
    "resnet18": lambda: models.resnet18(num_classes=8),
    "deepid": lambda: models.DeepID(10),
    "tfe": lambda: models.TFE(models.DeepID(10), models.resnet12(num_classes=8), 8),
}


def _two_steps(name, threads, batch):
    with num_threads(threads):
        tfe_random.manual_seed(0)
        model = MODELS[name]()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        step = TrainStep(model, opt)
        rng = np.random.default_rng(1)
        losses = []
        for _ in range(2):
            x = rng.standard_normal((batch, 1, 48, 48)).astype(np.float32)
            y = rng.integers(0, 8, batch).astype(np.int64)
            loss, logits = step(x, y)
            losses.append((loss.item(), np.array(logits.data, copy=True)))
        return losses, model.state_dict()


@pytest.mark.parametrize("name, batch", [("resnet18", 12), ("resnet18", 2), ("deepid", 12),
                                         ("tfe", 12)])
def test_training_steps_are_bit_identical_for_1_2_3_threads(name, batch):
    (ref_losses, ref_state) = _two_steps(name, 1, batch)
    for threads in (2, 3):
        losses, state = _two_steps(name, threads, batch)
        for (l1, z1), (l2, z2) in zip(ref_losses, losses):
            assert l1 == l2 and np.array_equal(z1, z2), f"{threads} threads: other logits"
        differ = [k for k in ref_state if not np.array_equal(ref_state[k], state[k])]
        assert not differ, f"{threads} threads: other bits in {differ[:5]}"
