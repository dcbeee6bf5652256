"""Interrupted runs resume exactly. A small real ``tfe-train`` is killed (SIGKILL) during the
identity stage, the emotion stage, the joint stage, a control, and in the middle of a
checkpoint write; run again, it ends with the same model files (SHA-256) and the same
results (wall times aside) as an uninterrupted run, some of them on another thread count.
Damaged or foreign resume files are refused with one line; temporaries of killed runs are
removed; output files get the permissions of the umask."""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import tfe
from tfe import checkpoint, cli, resume

from helpers import stage_dir

ARGS = ["--people", "4", "2", "2", "6", "--per-person", "2", "4", "--epochs-identity", "3",
        "--epochs-emotion", "2", "--epochs-joint", "2", "--batch-size", "16", "--no-progress",
        "--seeds", "0"]
EPOCHS = {"identity": 3, "emotion": 2, "joint": 2, "baseline_more_epochs": 2,
          "tfe_random_identity": 2}
UMASK = 0o027  # neither mkstemp's 0600 nor the usual 0644: the files must follow it
MAIN = "import sys; from tfe.cli import train_main; sys.exit(train_main(sys.argv[1:]))"


def _start(out, threads, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", MAIN, *ARGS, "--out", str(out), "--threads", str(threads)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        preexec_fn=lambda: os.umask(UMASK))


def _run(out, threads=1):
    p = _start(out, threads)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log[-3000:]
    return log


def _kill_after_line(out, text, threads):
    """Starts a run and SIGKILLs it as soon as it prints a line containing ``text``."""
    p = _start(out, threads)
    for line in p.stdout:
        if text in line:
            p.send_signal(signal.SIGKILL)
            break
    p.stdout.close()
    assert p.wait(timeout=600) == -signal.SIGKILL, f"the run ended before printing {text!r}"


def _epochs_done(out, stage):
    path = stage_dir(out, stage) / f"{stage}.resume.safetensors"
    return checkpoint.load(path)[1]["resume"]["epoch"] if path.exists() else 0


def _outcome(out):
    """SHA-256 of every model file, and the results and curves without timings."""
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for folder in ("identity", "seed0")
              for p in sorted((out / folder).glob("*.safetensors"))
              if not p.name.endswith(".resume.safetensors")}
    results = json.loads((out / "results.json").read_text())
    results.pop("wall_s")
    results["protocol"].pop("threads")
    metrics = json.loads((out / "metrics.json").read_text())
    for split in metrics:
        for rows in split.values():
            for row in rows if isinstance(rows, list) else []:
                row.pop("images_per_s")
    return hashes, results, metrics


def _temporaries(out):
    return [os.path.join(d, f) for d, _, files in os.walk(out) for f in files
            if f.startswith(".tmp-")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    _run(out, threads=1)
    return out


def test_outputs_follow_the_umask(reference):
    files = [os.path.join(d, f) for d, _, fs in os.walk(reference) for f in fs]
    assert len(files) > 10
    assert {oct(os.stat(f).st_mode & 0o777) for f in files} == {oct(0o666 & ~UMASK)}


@pytest.mark.parametrize("stage, kill_threads, rerun_threads", [
    ("identity", 2, 1),  # dropout masks: the counter must survive the kill
    ("emotion", 1, 1),
    ("joint", 2, 1),
    ("baseline_more_epochs", 1, 1),  # a control
])
def test_killed_during_a_stage_resumes_exactly(reference, tmp_path, stage, kill_threads,
                                               rerun_threads):
    for attempt in range(3):  # until the kill lands before the stage's last epoch is saved
        out = tmp_path / f"try{attempt}"
        _kill_after_line(out, f"[{stage}] epoch 1/{EPOCHS[stage]}", kill_threads)
        if _epochs_done(out, stage) < EPOCHS[stage]:
            break
    else:
        pytest.fail(f"no kill landed inside the {stage} stage in 3 attempts")
    log = _run(out, rerun_threads)
    assert f"[{stage}] resuming after epoch" in log
    assert _outcome(out) == _outcome(reference)


def test_killed_in_the_middle_of_a_checkpoint_write(reference, tmp_path):
    out = tmp_path / "run"
    p = _start(out, 1, {"TFE_TEST_KILL_BEFORE_RENAME": "emotion.resume.safetensors:2"})
    log, _ = p.communicate(timeout=600)
    assert p.returncode == -signal.SIGKILL, log[-3000:]
    left = _temporaries(out)
    assert len(left) == 1 and left[0].endswith("emotion.resume.safetensors")
    assert _epochs_done(out, "emotion") == 1  # the previous resume file is intact
    _run(out)
    assert _temporaries(out) == []
    assert _outcome(out) == _outcome(reference)


# ---- temporaries ------------------------------------------------------------------------------
def test_only_temporaries_of_dead_runs_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [f".tmp-{dead.pid}-0123abcd-0-emotion.resume.safetensors",
             f".tmp-{os.getpid()}-ffffffff-3-results.json"]  # our pid, an earlier process
    kept = [f".tmp-{os.getpid()}-{checkpoint._TOKEN}-7-results.json",  # being written now
            ".tmp-notes.txt", f".tmp-{dead.pid}-0123abcd-emotion.safetensors", "results.json",
            f".tmp-{dead.pid}-0123ABCD-0-x.json"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / f".tmp-{dead.pid}-0123abcd-1-folder").mkdir()
    os.symlink(tmp_path / "results.json", tmp_path / f".tmp-{dead.pid}-0123abcd-2-link")
    inner = tmp_path / "sub"
    inner.mkdir()
    (inner / stale[0]).write_text("x")
    assert checkpoint.remove_stale_temporaries(tmp_path) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(
        kept + ["sub", f".tmp-{dead.pid}-0123abcd-1-folder", f".tmp-{dead.pid}-0123abcd-2-link"])
    assert os.listdir(inner) == [stale[0]]  # only the folder given, never below it


# ---- bad resume files -------------------------------------------------------------------------
SHORT = ["--people", "4", "2", "2", "6", "--per-person", "2", "4", "--epochs-identity", "1",
         "--epochs-emotion", "1", "--epochs-joint", "1", "--batch-size", "16", "--no-progress",
         "--seeds", "0", "--no-controls", "--threads", "1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("short")
    with _threads_kept():
        assert cli.train_main(SHORT + ["--out", str(out)]) == 0
    return out


@contextlib.contextmanager
def _threads_kept():
    """cli.train_main sets the process's thread count (--threads); later tests keep theirs."""
    before = tfe.get_num_threads()
    try:
        yield
    finally:
        tfe.set_num_threads(before)


def _refused(finished, tmp_path, damage, extra=(), then_afresh=False):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    path = out / "identity" / "identity.resume.safetensors"
    damage(path)
    with _threads_kept():
        with pytest.raises(SystemExit) as e:
            cli.train_main(SHORT + ["--out", str(out), *extra])
        msg = str(e.value)
        assert msg.startswith(f"tfe-train: error: {path}: ") and "\n" not in msg
        assert msg.endswith("--no-resume starts afresh")
        if then_afresh:
            assert cli.train_main(SHORT + ["--out", str(out), "--no-resume", *extra]) == 0
    return msg


def _rewrite_state(path, change):
    """The resume file with its state changed and a valid checksum (so that the state
    checks, not the checksum, must catch it)."""
    tensors, meta = checkpoint.load(path)
    state = meta["resume"]
    change(state)
    checkpoint.save(path, tensors, {"resume": json.dumps(state),
                                    "resume_sha256": resume._digest(tensors, state)})


def test_truncated_resume_file_is_refused(finished, tmp_path):
    msg = _refused(finished, tmp_path, lambda p: p.write_bytes(p.read_bytes()[:-1000]),
                   then_afresh=True)
    assert "unreadable resume file" in msg


def test_bit_flipped_resume_file_is_refused(finished, tmp_path):
    def flip(p):
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x10
        p.write_bytes(bytes(data))

    assert "checksum mismatch" in _refused(finished, tmp_path, flip)


def test_resume_file_with_a_missing_key_is_refused(finished, tmp_path):
    msg = _refused(finished, tmp_path, lambda p: _rewrite_state(p, lambda s: s.pop("history")))
    assert "lacks 'history'" in msg


def test_resume_file_with_a_wrong_type_is_refused(finished, tmp_path):
    msg = _refused(finished, tmp_path,
                   lambda p: _rewrite_state(p, lambda s: s["best"].update(epoch="1")))
    assert "'epoch' is not a count" in msg


def test_resume_file_from_other_settings_is_refused(finished, tmp_path):
    msg = _refused(finished, tmp_path, lambda p: None, ["--lr-identity", "0.02"])
    assert "other settings" in msg


def test_model_file_in_place_of_a_resume_file_is_refused(finished, tmp_path):
    msg = _refused(finished, tmp_path, lambda p: shutil.copy(p.parent / "identity.safetensors", p))
    assert "not a tfe resume file" in msg


def test_every_bit_flip_is_refused_or_harmless(finished, tmp_path):
    """300 random single-bit flips anywhere in the file: each is refused, or (a flip such as
    'e' -> 'E' in a number's exponent) reads back exactly the same state."""
    from tfe import models, optim

    good = (finished / "identity" / "identity.resume.safetensors").read_bytes()
    fingerprint = checkpoint.load(finished / "identity" / "identity.resume.safetensors")[1][
        "resume"]["fingerprint"]

    def restore(path):
        model = models.DeepID(_identities(finished), input_size=cli.SYNTHETIC_SIZE)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        out = resume.load(path, model, opt, fingerprint)
        return out, model.state_dict()

    path = tmp_path / "r.safetensors"
    path.write_bytes(good)
    (epoch, history, best, _), weights = restore(path)
    rng = np.random.default_rng(0)
    refused = 0
    for pos, bit in zip(rng.integers(0, len(good), 300), rng.integers(0, 8, 300)):
        data = bytearray(good)
        data[pos] ^= 1 << bit
        path.write_bytes(bytes(data))
        try:
            (e2, h2, b2, _), w2 = restore(path)
        except resume.ResumeError as err:
            assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
            refused += 1
            continue
        assert (e2, h2, b2) == (epoch, history, best)
        assert all(np.array_equal(weights[k], w2[k]) for k in weights)
    assert refused >= 295


def _identities(finished):
    tensors, _ = checkpoint.load(finished / "identity" / "identity.safetensors")
    return tensors["classifier.weight"].shape[0]
