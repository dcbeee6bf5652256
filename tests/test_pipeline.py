"""End to end: tfe-train on a tiny synthetic set (results contract, model files, resume,
determinism) and tfe-predict on image files."""

import json
import os

import numpy as np
import pytest

import tfe
from tfe import checkpoint, cli
from tfe.modelfile import LoadedModel

from helpers import TINY  # the tiny run; the finished run itself is conftest's run_dir


def test_results_follow_the_contract(run_dir):
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["synthetic"] is True
    proto = doc["protocol"]
    assert proto["dataset"] == "synthetic" and proto["selection"] == "validation"
    assert proto["classes"][0] == "neutral" and len(proto["classes"]) == 8
    assert proto["fold_hash"].startswith("sha256:") and proto["tfe_version"]
    assert proto["epochs"] == {"identity": 1, "emotion": 2, "joint": 1}
    assert proto["device"] == "cpu"
    assert proto["threads"] >= 1 and proto["cpu_kernels"]["gemm"] == tfe._native.gemm_kernel()
    for key in ("baseline", "tfe_jl"):
        entry = doc[key]
        assert 0 <= entry["test_acc"] <= 100 and len(entry["per_fold"]) == 1
        assert entry["test_acc_std"] is None  # one seed: no spread to report
    assert doc["baseline"]["model"] == "resnet12" and doc["tfe_jl"]["model"] == "tfe12"
    assert set(doc["controls"]) == {"baseline_more_epochs", "tfe_random_identity"}
    assert doc["identity"]["verification_acc"] is None  # not measured: null, never a guess
    assert doc["identity_verdict"]["splits"] == 1  # TFE-JL against both controls, per seed
    assert doc["plateau"]["emotion"] == [None]  # 2 epochs: too few to call a plateau
    assert all(doc["wall_s"][k] > 0 for k in ("identity", "emotion", "joint"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics[0]["emotion"]) == 2 and "val_acc" in metrics[0]["joint"][0]
    for png in ("curves.png", "confusion.png", "synthetic_people.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_files_carry_contract_and_pass_selftest(run_dir):
    model = LoadedModel(run_dir / "seed0" / "joint.safetensors")
    size = cli.SYNTHETIC_SIZE  # the default run's faces
    assert model.classes[0] == "neutral" and model.input_size == (size, size)
    assert model.metadata["architecture"]["name"] == "tfe"
    assert model.selftest() < 1e-4
    probs = model.probabilities(np.full((3, size, size), 128, np.uint8))
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)


def test_rerun_resumes_finished_stages_without_training(run_dir, capsys):
    before = json.loads((run_dir / "results.json").read_text())
    assert cli.train_main(TINY + ["--out", str(run_dir)]) == 0
    log = capsys.readouterr().out
    assert "resuming after epoch 2 of 2" in log and "epoch 1/2" not in log
    after = json.loads((run_dir / "results.json").read_text())
    assert after["tfe_jl"]["per_fold"] == before["tfe_jl"]["per_fold"]


def test_resume_continues_an_interrupted_stage(tmp_path, run_dir):
    # A run stopped after epoch 1 of the emotion stage: its resume file says epoch 1.
    out = tmp_path / "r"
    short = [a if a != "2" or TINY[i - 1] != "--epochs-emotion" else "1"
             for i, a in enumerate(TINY)]
    assert cli.train_main(short + ["--out", str(out), "--no-controls"]) == 0
    assert cli.train_main(TINY + ["--out", str(out), "--no-controls"]) == 0
    _, meta = checkpoint.load(out / "seed0" / "emotion.resume.safetensors")
    assert meta["resume"]["epoch"] == 2 and len(meta["resume"]["history"]) == 2


def test_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "r"
    assert cli.train_main(TINY + ["--out", str(out), "--no-controls"]) == 0
    with pytest.raises(SystemExit, match=r"^tfe-train: error: .*\.resume\.safetensors: "
                       r"written by a run with other settings.*--no-resume starts afresh$"):
        cli.train_main(TINY + ["--out", str(out), "--no-controls", "--lr-emotion", "0.02"])


def test_same_seed_same_numbers(tmp_path, run_dir):
    out = tmp_path / "again"
    assert cli.train_main(TINY + ["--out", str(out)]) == 0
    a = json.loads((run_dir / "results.json").read_text())
    b = json.loads((out / "results.json").read_text())
    for key in ("baseline", "tfe_jl"):
        assert a[key]["per_fold"] == b[key]["per_fold"]
    ma = json.loads((run_dir / "metrics.json").read_text())[0]["joint"]
    mb = json.loads((out / "metrics.json").read_text())[0]["joint"]
    assert [r["train_loss"] for r in ma] == [r["train_loss"] for r in mb]


def test_predict_prints_probabilities_per_image(run_dir, tmp_path, capsys):
    from PIL import Image

    paths = []
    for i, size in enumerate([(48, 48), (100, 80)]):
        p = tmp_path / f"face{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, size[::-1] + (3,),
                                                           dtype=np.uint8)).save(p)
        paths.append(str(p))
    # --detect never: each image is one face crop (random pixels hold no face to detect)
    assert cli.predict_main([str(run_dir / "seed0" / "joint.safetensors"), *paths, "--json",
                             "--detect", "never"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in rows] == paths
    for r in rows:
        (face,) = r["faces"]
        assert abs(sum(face["emotions"].values()) - 1) < 1e-5
        assert face["label"] == max(face["emotions"], key=face["emotions"].get)


def test_predict_errors_name_the_file(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert cli.predict_main([str(run_dir / "seed0" / "joint.safetensors"), str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"tfe-predict: error: {bad}: ")
    with pytest.raises(SystemExit, match=r"bad\.png"):
        cli.predict_main([str(run_dir / "seed0" / "joint.safetensors"), str(bad), "--fail-fast"])
    with pytest.raises(SystemExit, match=r"nope\.safetensors"):
        cli.predict_main([str(tmp_path / "nope.safetensors"), str(bad)])


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.train_main(TINY + ["--out", str(tmp_path), "--epochs-joint", "0"])
    assert "argument --epochs-joint: must be >= 1, got 0" in capsys.readouterr().err
    if not tfe.cuda.is_available():
        with pytest.raises(SystemExit, match=r"--device cuda:0: CUDA is not available"):
            cli.train_main(TINY + ["--out", str(tmp_path), "--device", "cuda"])
    with pytest.raises(SystemExit):
        cli.train_main(TINY + ["--out", str(tmp_path), "--device", "gpu0"])
    assert "argument --device: gpu0: expected cpu, cuda or cuda:N" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def _write_png(path, rng, size=(48, 48)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(path)


def test_real_dataset_path_with_subject_folds(tmp_path):
    """A CK+48-style folder set and a folder-per-person identity set, 3 subject folds."""
    rng = np.random.default_rng(0)
    ck, ids = tmp_path / "ck", tmp_path / "ids"
    for e, emotion in enumerate(("anger", "happy", "surprise")):
        for s in range(9):
            for frame in range(2):
                _write_png(ck / emotion / f"S{100 + s:03d}_00{e}_0000000{frame}.png", rng)
    for person in range(4):
        for i in range(3):
            _write_png(ids / f"p{person}" / f"{i}.pgm", rng, (56, 46))
    out = tmp_path / "out"
    args = ["--dataset", "ckplus", "--data-dir", str(ck), "--identity-dir", str(ids),
            "--out", str(out), "--folds", "3", "--max-folds", "2", "--epochs-identity", "1",
            "--epochs-emotion", "1", "--epochs-joint", "1", "--batch-size", "8",
            "--no-progress", "--no-controls"]
    assert cli.train_main(args) == 0
    doc = json.loads((out / "results.json").read_text())
    proto = doc["protocol"]
    assert doc["synthetic"] is False and proto["fold_kind"] == "subject"
    assert proto["folds"] == 3 and proto["folds_run"] == 2
    assert proto["classes"] == ["anger", "happy", "surprise"]
    assert len(doc["tfe_jl"]["per_fold"]) == 2 and doc["controls"] is None
    folds = json.loads((out / "folds.json").read_text())["folds"]
    for f in folds:
        assert not set(f["test_people"]) & set(f["val_people"])
    assert sorted(p for f in folds for p in f["test_people"]) == [f"S{100 + s:03d}"
                                                                  for s in range(9)]
    from tfe.data.folds import hash_of

    assert proto["fold_hash"] == hash_of(folds)


def test_real_dataset_argument_errors(tmp_path):
    with pytest.raises(SystemExit, match=r"--dataset ckplus needs --data-dir"):
        cli.train_main(["--dataset", "ckplus", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match=r"need a real data set"):
        cli.train_main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match=r"no person folders inside"):
        cli.train_main(["--dataset", "ckplus", "--data-dir", str(tmp_path), "--identity-dir",
                        str(tmp_path), "--out", str(tmp_path / "o")])
    rng = np.random.default_rng(0)
    for i in range(2):
        _write_png(tmp_path / "ids" / "p0" / f"{i}.png", rng)
    with pytest.raises(SystemExit, match=r"missing: no such folder"):
        cli.train_main(["--dataset", "ckplus", "--data-dir", str(tmp_path / "missing"),
                        "--identity-dir", str(tmp_path / "ids"), "--out", str(tmp_path / "o")])


def test_ferplus_path_without_a_test_split(tmp_path, capsys):
    """FERPlus folders with train and validation only (as here: PrivateTest held back):
    selection on validation, no test figure invented."""
    rng = np.random.default_rng(1)
    root = tmp_path / "fer"
    for split, n in (("FER2013Train", 24), ("FER2013Valid", 8)):
        rows = []
        for i in range(n):
            name = f"fer{len(rows) + (0 if split.endswith('Train') else 1000):07d}.png"
            _write_png(root / split / name, rng)
            votes = [0] * 10
            votes[i % 8] = 8
            votes[(i + 1) % 8] = 2
            rows.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
        (root / split / "label.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"  # no --identity-dir: the built-in synthetic identity set
    assert cli.train_main(["--dataset", "ferplus", "--data-dir", str(root),
                           "--out", str(out), "--epochs-identity", "1",
                           "--epochs-emotion", "1", "--epochs-joint", "1", "--batch-size", "8",
                           "--no-progress"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"]["dataset"] == "ferplus" and doc["protocol"]["fold_kind"] == "split"
    assert doc["protocol"]["classes"][:2] == ["neutral", "happiness"]
    assert doc["baseline"] is None and doc["tfe_jl"] is None  # no PrivateTest: null
    v = doc["validation_only"]
    assert v["tfe_jl_val_acc"] is not None
    assert v["baseline_more_epochs_val_acc"] is not None  # controls: validation only too
    assert v["tfe_random_identity_val_acc"] is not None
    assert doc["protocol"]["splits"]["test"] is None
    assert doc["protocol"]["identity_data"][0].startswith("synthetic:")
    printed = capsys.readouterr().out
    assert "SYNTHETIC identity set" in printed and "controls: baseline +epochs" in printed


def test_verification_uses_people_unseen_in_training():
    import tfe.random
    from tfe import models
    from tfe.data import Normalizer
    from tfe.data.synthetic import SyntheticFaces
    from tfe.pipeline import split_verification_people, verification_score

    ids = SyntheticFaces(seed=3).identity_set(20, 6)
    train, held = split_verification_people(ids, seed=0)
    assert held is not None and len(np.unique(held.labels)) == 8
    assert not set(train.subjects) & set(held.subjects)
    assert train.num_classes == 12 and train.labels.max() == 11  # renumbered
    tfe.random.manual_seed(0)
    deepid = models.DeepID(train.num_classes)
    acc, std = verification_score(deepid, held, Normalizer.fit(train.images), seed=0)
    assert 0 <= acc <= 100 and std >= 0
    few = SyntheticFaces(seed=3).identity_set(6, 4)
    assert split_verification_people(few, seed=0) == (few, None)


def test_init_emotion_with_no_epochs_reuses_the_baseline(run_dir, tmp_path):
    """--init-emotion MODEL --epochs-emotion 0: the baseline is that model as it is, and the
    stages after it run as they did (so a variant of a finished run need not retrain it)."""
    model = run_dir / "seed0" / "emotion.safetensors"
    args = TINY + ["--out", str(tmp_path / "reuse"), "--init-emotion", str(model)]
    args[args.index("--epochs-emotion") + 1] = "0"
    assert cli.train_main(args) == 0
    first = json.loads((run_dir / "results.json").read_text())
    again = json.loads((tmp_path / "reuse" / "results.json").read_text())
    assert again["protocol"]["init_emotion"] == str(model)
    assert again["protocol"]["epochs"]["emotion"] == 0
    for key in ("baseline", "tfe_jl"):
        assert again[key]["test_acc"] == first[key]["test_acc"]
