"""Whole models on the GPU: a training step equals the CPU's, a replayed CUDA graph equals
eager steps, device memory is reused from the cache, and tfe-train runs with --device cuda.

Order matters in one place: eager CUDA dropout draws the CPU's masks only until a CUDA
graph has been recorded (each recording advances the device's dropout counter), so the
TFE18 comparison with the CPU runs before the graph tests of this file.
"""
import json

import numpy as np
import pytest

import tfe
from tfe import cli, models, optim
from tfe.step import EAGER_WARMUP_STEPS, TrainStep

from float64_oracle import assert_as_accurate_as_float32, train_steps

pytestmark = pytest.mark.cuda

MAKE = {"resnet18": models.resnet18,
        "tfe18": lambda: models.TFE(models.DeepID(6), models.resnet18(), 8)}


def _batch(seed, n=32):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 1, 48, 48)).astype(np.float32),
            rng.integers(0, 8, n).astype(np.int64))


def _model_and_opt(name, device):
    tfe.random.manual_seed(0)
    model = MAKE[name]().to(device)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    return model, opt


@pytest.mark.parametrize("name", ["resnet18", "tfe18"])
def test_training_steps_on_cuda_as_accurate_as_the_float32_reference(name):
    # Three steps on the GPU, judged with the CPU engines against the same steps in float64
    # on the reference (tests/float64_oracle.py): two float32 runs of batch norm backward
    # may differ by more than any constant, but neither may be much worse than float32.
    batches = [_batch(s) for s in range(3)]
    model, opt = _model_and_opt(name, "cuda")
    step = TrainStep(model, opt, use_graph=False)
    gpu = ({"loss": np.array([step(x, y)[0].item() for x, y in batches])},
           {k: np.asarray(v, np.float64) for k, v in model.state_dict().items()})
    cpu = {}
    for engine, float64 in (("exact", True), ("ref32", False), ("native", False)):
        model, opt = _model_and_opt(name, "cpu")
        losses, _, state = train_steps(model, opt, batches, "native" if engine == "native"
                                       else "reference", float64)
        cpu[engine] = ({"loss": losses}, state)
    for i, what in enumerate(("losses", "state after 3 steps")):
        for engine, got in (("GPU", gpu), ("CPU", cpu["native"])):
            assert_as_accurate_as_float32(got[i], cpu["ref32"][i], cpu["exact"][i],
                                          f"{name} {engine} {what}")


def test_graph_replay_equals_eager_steps():
    eager, opt_e = _model_and_opt("resnet18", "cuda")
    graphed, opt_g = _model_and_opt("resnet18", "cuda")
    run_e = TrainStep(eager, opt_e, use_graph=False)
    run_g = TrainStep(graphed, opt_g, use_graph=True)
    for s in range(EAGER_WARMUP_STEPS + 4):
        x, y = _batch(s)
        le, logits_e = run_e(x, y)
        lg, logits_g = run_g(x, y)
        assert lg.item() == pytest.approx(le.item(), rel=1e-6, abs=1e-7)
        np.testing.assert_allclose(logits_g.numpy(), logits_e.numpy(), rtol=1e-5, atol=1e-6)
    assert run_g._graph is not None  # the later steps were replays
    se, sg = eager.state_dict(), graphed.state_dict()
    for k in se:
        np.testing.assert_allclose(sg[k], se[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_graph_rerecords_for_a_new_learning_rate_and_batch_size():
    model, opt = _model_and_opt("resnet18", "cuda")
    run = TrainStep(model, opt, use_graph=True)
    for s in range(EAGER_WARMUP_STEPS + 1):
        run(*_batch(s))
    first = run._graph
    run(*_batch(9))
    assert run._graph is first  # same shape and rate: replayed
    opt.param_groups[0]["lr"] = 0.01
    run(*_batch(10))
    assert run._graph is not first
    loss, logits = run(*_batch(11, n=7))  # the smaller last batch of an epoch
    assert tuple(logits.shape) == (7, 8) and np.isfinite(loss.item())


def test_tfe18_graph_trains_with_fresh_dropout_masks():
    model, opt = _model_and_opt("tfe18", "cuda")
    run = TrainStep(model, opt, use_graph=True)
    x, y = _batch(0)
    losses = [run(x, y)[0].item() for _ in range(EAGER_WARMUP_STEPS + 6)]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]  # one batch, repeated: the loss falls
    # Dropout masks differ between replays, so the replayed losses are not a fixed cycle.
    assert len(set(losses[EAGER_WARMUP_STEPS:])) == len(losses) - EAGER_WARMUP_STEPS


def test_device_memory_comes_from_the_cache():
    model, opt = _model_and_opt("resnet18", "cuda")
    run = TrainStep(model, opt, use_graph=False)
    for s in range(3):
        run(*_batch(s))
    tfe.cuda.synchronize()
    before = tfe.cuda.memory_stats()
    for s in range(10):
        run(*_batch(s))
    tfe.cuda.synchronize()
    after = tfe.cuda.memory_stats()
    assert after["reserved"] == before["reserved"]  # no new memory from the driver
    assert after["in_use"] <= before["in_use"] * 1.05


def test_tfe_train_on_cuda(tmp_path):
    tiny = ["--people", "4", "2", "2", "6", "--per-person", "2", "4", "--epochs-identity", "1",
            "--epochs-emotion", "2", "--epochs-joint", "1", "--batch-size", "16",
            "--no-progress", "--seeds", "0", "--out", str(tmp_path), "--device", "cuda"]
    assert cli.train_main(tiny) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["protocol"]["device"] == "cuda" and doc["protocol"]["cuda_graph"] is True
    assert 0 <= doc["tfe_jl"]["test_acc"] <= 100
