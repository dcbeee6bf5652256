"""benchmarks/torch_models.py: the PyTorch twins of tfe's networks, built from their layer
lists, compute what tfe computes from the same weights (the benchmarks' comparisons rest
on it)."""

import importlib.util
import os

import numpy as np
import pytest

import tfe.random
from tfe import models, ops, optim
from tfe.layers import describe
from tfe.tensor import Tensor

pytestmark = pytest.mark.numerics  # re-run on every lower kernel level: tests/test_kernel_levels.py


torch = pytest.importorskip("torch", reason="PyTorch is optional: pip install torch==2.13.0")

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "torch_models.py")


def _load_mirrors():
    # By path and under its own name: benchmarks/ is not a package, and putting it on
    # sys.path would let its conftest.py shadow this folder's.
    spec = importlib.util.spec_from_file_location("tfe_bench_torch_models", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tm = _load_mirrors()

MAKE = {
    "resnet18": models.resnet18,
    "resnet12": models.resnet12,
    "deepid": lambda: models.DeepID(10),
    "tfe18": lambda: models.TFE(models.DeepID(10), models.resnet18(), 8),
}


def _model(name, rng):
    """A tfe model with non-trivial running statistics, so eval mode tests them too."""
    tfe.random.manual_seed(3)
    m = MAKE[name]()
    state = m.state_dict()
    for k, v in state.items():
        if k.endswith("running_var"):
            state[k] = (0.5 + rng.random(v.shape)).astype(np.float32)
        elif k.endswith("running_mean"):
            state[k] = (0.1 * rng.standard_normal(v.shape)).astype(np.float32)
    m.load_state_dict(state)
    return m


@pytest.mark.parametrize("name", ["resnet18", "resnet12", "deepid", "tfe18"])
def test_names_and_shapes_match(name, rng):
    m = _model(name, rng)
    t = tm.mirror(m)
    own = tm.torch_state_names(t)
    state = m.state_dict()
    assert set(own) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(own[k].detach().numpy(), v, err_msg=k)
    assert sum(p.numel() for p in t.parameters()) == m.num_parameters()


def test_load_rejects_a_missing_or_extra_name(rng):
    m = _model("resnet18", rng)
    t = tm.build(describe(m))
    state = m.state_dict()
    with pytest.raises(KeyError, match="blocks.0.conv1.weight"):
        tm.load_tfe_state(t, {k: v for k, v in state.items() if k != "blocks.0.conv1.weight"})
    with pytest.raises(KeyError, match="extra"):
        tm.load_tfe_state(t, {**state, "extra": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="fc.bias"):
        tm.load_tfe_state(t, {**state, "fc.bias": np.zeros(3, np.float32)})


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", ["resnet18", "deepid", "tfe18"])
def test_forward_equals_tfe(name, mode, rng):
    """Logits and, in train mode, the updated running statistics. DeepID's dropout draws
    different masks in the two libraries: in train mode it is compared with p = 0 (TFE
    does not use dropout: its head reads DeepID's features, before the dropout)."""
    m = _model(name, rng)
    if name == "deepid" and mode == "train":
        m.dropout.p = 0.0  # before the twin is built: its layer list carries p
    t = tm.mirror(m)
    m.train(mode == "train")
    t.train(mode == "train")
    # Batch 16: with fewer images the head's BN1d sees near-zero batch variances for some
    # DeepID features and amplifies float32 rounding (see test_models.py).
    x = rng.standard_normal((16, 1, 48, 48)).astype(np.float32)
    got = m(Tensor(x)).numpy()
    with torch.no_grad():
        want = t(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < 1e-4, err  # observed <= 3e-6
    after, own = m.state_dict(), tm.torch_state_names(t)
    for k in after:
        np.testing.assert_allclose(after[k], own[k].detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=k)


def test_tfe18_training_step_equals_tfe(rng):
    """One SGD step of TFE18 with the pipeline's two parameter groups: tfe and its PyTorch
    twin in float32 both match the twin in float64 (same loss, same update, same loss from
    the updated weights), so the twin is the same network and tfe's step is as exact as
    float32 allows.

    Bounds, per tensor of the update (normwise, relative to the float64 update): 1e-2, and
    over all parameters at once: 1e-4. The per-tensor bound allows for a ReLU sign flip: a
    pre-activation within ~1e-7 of zero can fall on either side in float32, which moves the
    update of that channel's BN bias by a few parts in 1e3 (measured 5.4e-3 in
    blocks.2.bn1.bias, tfe's portable kernel level with the training Winograd; PyTorch and
    tfe's other paths 4.5e-4, in BN weights, whose updates are the smallest). The global
    bound holds with that flip (8.3e-5; otherwise 4.8e-7) and catches what a mirror gets
    wrong: a layer, an epsilon, a learning-rate group or weight decay each move the whole
    update by far more.

    One step only: from the second on, the batch statistics of this tiny overfitted batch
    amplify float32 rounding (after three steps tfe and PyTorch each differ from a float64
    run by ~1e-2 normwise in some BN parameters, PyTorch more), so later steps test
    conditioning, not the mirror."""
    m = _model("tfe18", rng)
    x = rng.standard_normal((16, 1, 48, 48)).astype(np.float32)
    y = rng.integers(0, 8, 16).astype(np.int64)
    ident, rest = m.parameter_groups()
    kw = dict(momentum=0.9, weight_decay=5e-4)
    before = m.state_dict()
    losses, updates = {}, {}
    for name, dtype in (("torch32", torch.float32), ("exact", torch.float64)):
        t = tm.mirror(m).train().to(dtype)
        topt = torch.optim.SGD([{"params": tm.named_for(m, t, rest), "lr": 0.01},
                                {"params": tm.named_for(m, t, ident), "lr": 0.001}], lr=0.01, **kw)
        tx, ty = torch.from_numpy(x).to(dtype), torch.from_numpy(y)
        first = torch.nn.functional.cross_entropy(t(tx), ty)
        topt.zero_grad()
        first.backward()
        topt.step()
        with torch.no_grad():
            second = torch.nn.functional.cross_entropy(t(tx), ty)
        losses[name] = (first.item(), second.item())
        updates[name] = {k: v.detach().double().numpy() - before[k]
                         for k, v in tm.torch_state_names(t).items()}
    opt = optim.SGD([{"params": rest, "lr": 0.01}, {"params": ident, "lr": 0.001}], lr=0.01, **kw)
    first = ops.cross_entropy(m(Tensor(x)), y)
    opt.zero_grad()
    first.backward()
    opt.step()
    losses["tfe"] = (first.item(), ops.cross_entropy(m(Tensor(x)), y).item())
    after = m.state_dict()
    updates["tfe"] = {k: after[k].astype(np.float64) - before[k] for k in after}

    exact = updates["exact"]
    total = np.sqrt(sum(np.sum(u ** 2) for u in exact.values()))
    for who in ("tfe", "torch32"):
        for got, want in zip(losses[who], losses["exact"]):  # observed rel <= 1e-5
            assert got == pytest.approx(want, rel=1e-4), who
        assert set(updates[who]) == set(exact), who
        sq = 0.0
        for k, u in exact.items():
            diff = updates[who][k] - u
            sq += np.sum(diff ** 2)
            err = np.linalg.norm(diff) / (np.linalg.norm(u) + 1e-30)
            assert err < 1e-2, (who, k, err)
        assert np.sqrt(sq) / total < 1e-4, (who, np.sqrt(sq) / total)


@pytest.mark.slow
def test_gpu_bench_smoke_on_cpu(tmp_path):
    """benchmarks/gpu_bench.py --device cpu runs every section's code path (conv cases and
    their check, the training-step variants, the loss check, summary and JSON) without a
    GPU. In a subprocess: it sets both libraries' thread counts."""
    import json
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(_PATH), "gpu_bench.py")
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, script, "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    headers = [line for line in proc.stdout.splitlines() if line.startswith("== ")]
    assert headers[-1] == "== summary =="  # printed last, so that it ends a log
    res = json.loads(out.read_text())
    assert not res["errors"] and not res["mismatches"]
    assert {r["net"] for r in res["conv"]} == {"resnet18", "deepid"}
    assert all(r["check_ok"] and r["tfe_ms"] > 0 for r in res["conv"])
    assert len(res["conv"]) == sum(1 for line in proc.stdout.splitlines()
                                   if line.startswith(("stem_", "conv_", "s2_", "proj_",
                                                       "deepid_conv")))
    for name in ("resnet18", "tfe18"):
        variants = res["steps"][name]["variants"]
        assert all(variants[v]["ms"] > 0 for v in ("tfe_eager", "tfe_graph", "torch_eager",
                                                   "torch_eager_fp32"))
        losses = res["steps"][name]["check"]["losses"]
        assert set(losses) == {"tfe_eager", "tfe_graph", "torch_fp32", "torch_fp64"}
        # batch 4, three steps on one batch: a sanity bound, not a precision test
        assert res["steps"][name]["check"]["max_rel_diff"]["tfe_eager_vs_torch_fp64"] < 1e-2
