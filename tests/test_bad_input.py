"""Bad input, case by case: images, data folders, FER+ CSV rows, command-line values and
output folders.

Every case runs the real command (``tfe-train`` / ``tfe-predict`` main with argv, stderr
captured) and asserts what a user sees: a non-zero exit, exactly one ``error:`` line that
names the file or argument, no traceback, and the user's input files unchanged. Each case
fails before any training starts; the fixtures are tiny images made in tmp_path.

The last tests cover the inputs that must be *accepted* correctly rather than refused
(16-bit and other image modes, hidden/system entries), and the real console scripts in a
subprocess.
"""

import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import traceback
import zlib

import numpy as np
import pytest
from PIL import Image

from tfe import _native, cli, models, modelfile
from tfe.data.ckplus import load_ckplus
from tfe.data.folders import load_person_folders
from tfe.data.images import MAX_PIXELS, BadImage, read_image
from tfe.data.transforms import Normalizer

GOOD_VOTES = "8,1,1,0,0,0,0,0,0,0"
FER_ROW = '{name},"(0, 0, 48, 48)",{votes}'


# ---- fixtures ---------------------------------------------------------------------------


def _png(path, rng, size=(48, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)


def _png_declaring(path, width, height):
    """A tiny PNG whose header declares width x height pixels (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def make_ck(root, rng):
    """CK+48-style: 3 emotions x 3 subjects x 2 frames."""
    for e, emotion in enumerate(("anger", "happy", "surprise")):
        for s in range(3):
            for frame in range(2):
                _png(root / emotion / f"S{100 + s:03d}_{e + 1:03d}_{frame:08d}.png", rng)
    return root


def make_people(root, rng, people=3, per_person=3):
    for p in range(people):
        for i in range(per_person):
            _png(root / f"p{p}" / f"{i}.png", rng, (56, 46))
    return root


def make_fer(root, rng, rows=6):
    """FERPlus folder layout with a train and a validation split."""
    for split in ("FER2013Train", "FER2013Valid"):
        lines = []
        for i in range(rows):
            name = f"fer{i:07d}.png"
            _png(root / split / name, rng)
            lines.append(FER_ROW.format(name=name, votes=GOOD_VOTES))
        (root / split / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def fer_train_row(root, row):
    """Replace the third row of the training label.csv (line 3) by ``row``."""
    label = root / "FER2013Train" / "label.csv"
    lines = label.read_text().splitlines()
    lines[2] = row
    label.write_text("\n".join(lines) + "\n")


def _tree_hash(root):
    """sha256 over every path and file content under root (the user's inputs)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            h.update(os.path.relpath(p, root).encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
                continue
            with open(p, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def _run(main, argv, capsys):
    """(exit status, stderr lines) of a console main, as the interpreter would report
    them: SystemExit('text') prints text and exits 1; any other exception is a
    traceback."""
    capsys.readouterr()
    try:
        rc = main(argv)
        extra = ""
    except SystemExit as e:
        rc, extra = (1, str(e.code)) if isinstance(e.code, str) else (e.code, "")
    except Exception:  # a bug: show it as the user would see it
        rc, extra = 1, traceback.format_exc()
    err = capsys.readouterr().err + (extra + "\n" if extra else "")
    return rc, [line for line in err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    norm = Normalizer.fit(np.random.default_rng(0).integers(0, 256, (4, 48, 48), np.uint8))
    path = tmp_path_factory.mktemp("model") / "resnet12.safetensors"
    modelfile.save_model(path, models.resnet12(8), norm, list("abcdefgh"))
    return path


class Case:
    """One bad input: ``build(tmp, rng)`` makes the files and returns (command, argv,
    text the error line must contain)."""

    def __init__(self, build):
        self.build = build


CASES = {}


def case(name):
    def register(build):
        CASES[name] = Case(build)
        return build
    return register


def _ck_args(tmp, rng, data):
    ids = make_people(tmp / "ids", rng)
    return ["--dataset", "ckplus", "--data-dir", str(data), "--identity-dir", str(ids),
            "--out", str(tmp / "out"), "--no-progress"]


def _fer_args(tmp, rng, data):
    ids = make_people(tmp / "ids", rng)
    return ["--dataset", "ferplus", "--data-dir", str(data), "--identity-dir", str(ids),
            "--out", str(tmp / "out"), "--no-progress"]


# ---- images (tfe-predict) ---------------------------------------------------------------


def _predict_case(name, write, expect=None):
    @case(f"image-{name}")
    def build(tmp, rng, model):
        path = tmp / "in" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, rng)
        return cli.predict_main, [str(model), str(path)], expect or path.name


def _truncated(path, rng):
    _png(path, rng)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _tiff(array):
    def write(path, rng):
        Image.fromarray(array).save(path.with_suffix(".png"), "TIFF")  # content is TIFF
    return write


_predict_case("truncated-png", _truncated)
_predict_case("not-an-image", lambda p, r: p.write_text("hello, I am a text file\n"))
_predict_case("empty-file", lambda p, r: p.write_bytes(b""))
_predict_case("bomb-20000x20000", lambda p, r: _png_declaring(p, 20000, 20000))
_predict_case("bomb-9000x9000", lambda p, r: _png_declaring(p, 9000, 9000))
_predict_case("float-outside-0-1", _tiff(np.full((8, 8), 1000.0, np.float32)))
_predict_case("float-nan", _tiff(np.full((8, 8), np.nan, np.float32)))
_predict_case("int32-negative", _tiff(np.full((8, 8), -5, np.int32)))
_predict_case("png-header-only", lambda p, r: p.write_bytes(b"\x89PNG\r\n\x1a\n"))


@case("image-missing-file")
def _(tmp, rng, model):
    return cli.predict_main, [str(model), str(tmp / "in" / "nowhere.png")], "nowhere.png"


@case("image-is-a-folder")
def _(tmp, rng, model):
    (tmp / "in" / "face.png").mkdir(parents=True)
    return cli.predict_main, [str(model), str(tmp / "in" / "face.png")], "face.png"


@case("image-truncated-jpeg")
def _(tmp, rng, model):
    path = tmp / "in" / "face.jpg"
    path.parent.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    return cli.predict_main, [str(model), str(path)], "face.jpg"


@case("image-second-of-two-bad")
def _(tmp, rng, model):
    _png(tmp / "in" / "good.png", rng)
    (tmp / "in" / "bad.png").write_bytes(b"GIF89a broken")
    return cli.predict_main, [str(model), str(tmp / "in" / "good.png"),
                              str(tmp / "in" / "bad.png")], "bad.png"


# ---- data folders (tfe-train --dataset ckplus) ------------------------------------------


@case("ckplus-missing-data-dir")
def _(tmp, rng, model):
    return cli.train_main, _ck_args(tmp, rng, tmp / "in" / "nothing"), "nothing: no such folder"


@case("ckplus-data-dir-is-a-file")
def _(tmp, rng, model):
    (tmp / "in").mkdir()
    (tmp / "in" / "ck.zip").write_bytes(b"PK\x03\x04")
    return cli.train_main, _ck_args(tmp, rng, tmp / "in" / "ck.zip"), "ck.zip: is a file"


@case("ckplus-no-class-folders")
def _(tmp, rng, model):
    (tmp / "in" / "ck").mkdir(parents=True)
    return cli.train_main, _ck_args(tmp, rng, tmp / "in" / "ck"), "no class folders"


@case("ckplus-images-not-in-class-folders")
def _(tmp, rng, model):
    for i in range(3):
        _png(tmp / "in" / "ck" / f"S100_001_0000000{i}.png", rng)
    return cli.train_main, _ck_args(tmp, rng, tmp / "in" / "ck"), "found 3 images directly"


@case("ckplus-only-macosx-folder")
def _(tmp, rng, model):
    _png(tmp / "in" / "ck" / "__MACOSX" / "anger" / "._S100_001_00000001.png", rng)
    return cli.train_main, _ck_args(tmp, rng, tmp / "in" / "ck"), "no class folders"


def _spoilt_case(name, make, args, spoil, expect):
    """A good copy made by ``make(root, rng)``, spoilt by ``spoil(root, rng)``, given to
    tfe-train with ``args(tmp, rng, root)``."""
    @case(name)
    def build(tmp, rng, model):
        data = make(tmp / "in" / "data", rng)
        spoil(data, rng)
        return cli.train_main, args(tmp, rng, data), expect


def _ck_case(name, spoil, expect):
    _spoilt_case(f"ckplus-{name}", make_ck, _ck_args, spoil, expect)


_ck_case("empty-class-folder", lambda d, r: (d / "fear").mkdir(),
         "fear: class 'fear' has no images")
_ck_case("unknown-emotion-folder", lambda d, r: _png(d / "misc" / "S100_009_00000001.png", r),
         "unknown emotion folder 'misc'")
_ck_case("two-folders-one-class", lambda d, r: _png(d / "angry" / "S100_009_00000001.png", r),
         "'anger' and 'angry' are both")
_ck_case("file-name-without-subject", lambda d, r: _png(d / "happy" / "IMG_0001.png", r),
         "IMG_0001.png: not a CK+ file name")
_ck_case("truncated-image", lambda d, r: _truncated(d / "happy" / "S101_002_00000001.png", r),
         "S101_002_00000001.png: cannot read")


@case("ckplus-official-bad-emotion-code")
def _(tmp, rng, model):
    root = tmp / "in" / "ck"
    _png(root / "cohn-kanade-images" / "S005" / "001" / "S005_001_00000001.png", rng)
    emotion = root / "Emotion" / "S005" / "001" / "S005_001_00000001_emotion.txt"
    emotion.parent.mkdir(parents=True)
    emotion.write_text("   9.0000000e+00\n")
    return cli.train_main, _ck_args(tmp, rng, root), "_emotion.txt: unknown emotion code 9"


@case("ckplus-official-no-images-folder")
def _(tmp, rng, model):
    (tmp / "in" / "ck" / "Emotion").mkdir(parents=True)
    return cli.train_main, _ck_args(tmp, rng, tmp / "in" / "ck"), "cohn-kanade-images"


@case("identity-dir-missing")
def _(tmp, rng, model):
    data = make_ck(tmp / "in" / "ck", rng)
    args = _ck_args(tmp, rng, data)
    args[args.index("--identity-dir") + 1] = str(tmp / "in" / "no-ids")
    return cli.train_main, args, "no-ids: no such folder"


@case("identity-dir-no-person-with-two-images")
def _(tmp, rng, model):
    data = make_ck(tmp / "in" / "ck", rng)
    args = _ck_args(tmp, rng, data)
    ids = make_people(tmp / "in" / "few", rng, people=2, per_person=1)
    args[args.index("--identity-dir") + 1] = str(ids)
    return cli.train_main, args, "few: no person has 2+ images"


@case("identity-dir-images-not-in-person-folders")
def _(tmp, rng, model):
    data = make_ck(tmp / "in" / "ck", rng)
    args = _ck_args(tmp, rng, data)
    _png(tmp / "in" / "flat" / "a.png", rng)
    args[args.index("--identity-dir") + 1] = str(tmp / "in" / "flat")
    return cli.train_main, args, "flat: no person folders"


# ---- FER+ CSV rows (tfe-train --dataset ferplus) -----------------------------------------


def _fer_row_case(name, row, expect):
    _spoilt_case(f"ferplus-{name}", make_fer, _fer_args, lambda d, r: fer_train_row(d, row),
                 expect)


_NAME = "fer0000002.png"
_VOTE_CASES = [  # (case, the 10 votes of line 3, the column and value the error names)
    ("inf", "inf,1,1,0,0,0,0,0,0,0", "'neutral' is 'inf'"),
    ("nan", "8,nan,1,0,0,0,0,0,0,0", "'happiness' is 'nan'"),
    ("negative", "8,1,-1,0,0,0,0,0,0,0", "'surprise' is '-1'"),
    ("not-a-number", "8,1,1,x,0,0,0,0,0,0", "'sadness' is 'x'"),
    ("fraction", "8,1,1,0,0.5,0,0,0,0,0", "'anger' is '0.5'"),
    ("empty", "8,1,1,0,0,,0,0,0,0", "'disgust' is ''"),
]
for _case, _votes, _named in _VOTE_CASES:
    _fer_row_case(f"vote-{_case}", FER_ROW.format(name=_NAME, votes=_votes),
                  f"label.csv:3: vote for {_named}, expected a whole number >= 0")
_fer_row_case("too-few-columns", FER_ROW.format(name=_NAME, votes="8,1,1,0,0,0,0,0,0"),
              "label.csv:3: expected 12 columns")
_fer_row_case("too-many-columns", FER_ROW.format(name=_NAME, votes=GOOD_VOTES + ",0"),
              "label.csv:3: expected 12 columns")
_fer_row_case("missing-image", FER_ROW.format(name="fer9999999.png", votes=GOOD_VOTES),
              "label.csv:3: image fer9999999.png not found")
_fer_row_case("duplicate-name", FER_ROW.format(name="fer0000000.png", votes=GOOD_VOTES),
              "label.csv:3: image fer0000000.png is listed again (first at line 1)")
_fer_row_case("name-outside-folder", FER_ROW.format(name="../../x.png", votes=GOOD_VOTES),
              "label.csv:3: image name '../../x.png' is not a file name")
_fer_row_case("malformed-box", f"{_NAME},box,{GOOD_VOTES}", "label.csv:3: malformed face box")


@case("ferplus-label-csv-not-text")
def _(tmp, rng, model):
    data = make_fer(tmp / "in" / "fer", rng)
    (data / "FER2013Train" / "label.csv").write_bytes(b"\xff\xfe\x00\x89PNG\x00\x00" * 20)
    return cli.train_main, _fer_args(tmp, rng, data), "label.csv: not a text CSV file"


@case("ferplus-label-csv-missing")
def _(tmp, rng, model):
    data = make_fer(tmp / "in" / "fer", rng)
    (data / "FER2013Train" / "label.csv").unlink()
    return cli.train_main, _fer_args(tmp, rng, data), "label.csv: no such file"


@case("ferplus-csv-pair-vote-inf")
def _(tmp, rng, model):
    root = tmp / "in" / "fer"
    root.mkdir(parents=True)
    pixels = " ".join(["128"] * 2304)
    (root / "fer2013.csv").write_text("emotion,pixels,Usage\n" + "".join(
        f"0,{pixels},{u}\n" for u in ("Training", "Training", "PublicTest")))
    votes = ["8,1,1,0,0,0,0,0,0,0", "8,inf,1,0,0,0,0,0,0,0", "8,1,1,0,0,0,0,0,0,0"]
    (root / "fer2013new.csv").write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
        "unknown,NF\n" + "".join(f"{u},fer{i:07d}.png,{v}\n" for i, (u, v) in enumerate(
            zip(("Training", "Training", "PublicTest"), votes))))
    return cli.train_main, _fer_args(tmp, rng, root), "fer2013new.csv:3: vote for 'happiness'"


# ---- command-line values (parse time, before anything is read) ---------------------------


def _option_case(option, *values, expect=None):
    @case(f"option{option}={'_'.join(values)}")
    def build(tmp, rng, model):
        return cli.train_main, [option, *values, "--out", str(tmp / "out")], \
            expect or f"argument {option}:"


_option_case("--threads", "100000")
_option_case("--threads", "0")
_option_case("--threads", "two")
_option_case("--lr-emotion", "nan")
_option_case("--lr-emotion", "-0.1")
_option_case("--lr-emotion", "0")
_option_case("--lr-identity", "inf")
_option_case("--lr-joint", "1e400")
_option_case("--lr-joint-identity", "fast")
_option_case("--epochs-identity", "0")
_option_case("--epochs-joint", "-3")
_option_case("--epochs-emotion", "1.5")
_option_case("--epochs-emotion", "0", expect="argument --epochs-emotion: 0 needs --init-emotion")
_option_case("--init-emotion", "no-such-model.safetensors",
             expect="argument --init-emotion: no-such-model.safetensors: no such file")
_option_case("--identity-teacher", "no-such-cache",
             expect="argument --identity-teacher: no-such-cache: no such folder")
_option_case("--distill-weight", "2", expect="argument --distill-weight: needs --identity-teacher")
_option_case("--distill-weight", "-1")
_option_case("--batch-size", "0")
_option_case("--folds", "2")
_option_case("--max-folds", "0")
_option_case("--max-folds", "11", expect="argument --max-folds: 11 is more than --folds 10")
_option_case("--seeds", "-1")
_option_case("--seeds", str(2**32))
_option_case("--seeds", "0", "0", expect="argument --seeds: seed 0 is given twice")
_option_case("--people", "0", "2", "2", "6")
_option_case("--people", "4", "2", "2", "1", expect="argument --people: the identity set")
_option_case("--per-person", "0", "4")
_option_case("--per-person", "2", "1", expect="argument --per-person: the identity set")
_option_case("--device", "gpu")
_option_case("--device", "cuda:x")


# ---- output folders ---------------------------------------------------------------------


@case("out-is-a-file")
def _(tmp, rng, model):
    (tmp / "in").mkdir()
    (tmp / "in" / "results").write_text("my notes\n")
    return cli.train_main, ["--out", str(tmp / "in" / "results")], \
        "argument --out: " + str(tmp / "in" / "results") + " is a file, not a folder"


@case("out-inside-a-file")
def _(tmp, rng, model):
    (tmp / "in").mkdir()
    (tmp / "in" / "results").write_text("my notes\n")
    return cli.train_main, ["--out", str(tmp / "in" / "results" / "run")], \
        "results is a file, not a folder"


@case("out-broken-symlink")
def _(tmp, rng, model):
    (tmp / "in").mkdir()
    (tmp / "in" / "run").symlink_to(tmp / "in" / "gone")
    return cli.train_main, ["--out", str(tmp / "in" / "run")], "broken symbolic link"


@pytest.fixture
def read_only(tmp_path):
    """Makes folders read-only, even for root (chattr +i where permission bits are ignored),
    and writable again at teardown so that tmp_path can be removed."""
    made = []

    def make(folder):
        os.chmod(folder, 0o555)
        made.append(folder)
        try:
            open(os.path.join(folder, ".probe"), "w").close()
        except OSError:
            return
        os.unlink(os.path.join(folder, ".probe"))
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("cannot make a read-only folder here (root without chattr +i)")

    yield make
    for folder in made:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        os.chmod(folder, 0o755)


@pytest.mark.parametrize("inside", [False, True], ids=["out-read-only", "out-in-read-only"])
def test_read_only_output_folder(tmp_path, read_only, capsys, inside):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "keep.txt").write_text("a user's file\n")
    read_only(locked)
    before = _tree_hash(locked)
    out = locked / "run" if inside else locked
    rc, err = _run(cli.train_main, ["--out", str(out)], capsys)
    assert rc != 0
    assert len(err) == 2 and err[0].startswith("usage:"), err  # argparse: usage + error
    assert "argument --out:" in err[1] and "not writable" in err[1] and "locked" in err[1]
    assert _tree_hash(locked) == before


# ---- the table ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line(name, tmp_path, model_file, capsys):
    rng = np.random.default_rng(0)
    main, argv, expect = CASES[name].build(tmp_path, rng, model_file)
    inputs = tmp_path / "in"
    before = _tree_hash(inputs) if inputs.exists() else None
    rc, err = _run(main, argv, capsys)
    text = "\n".join(err)
    assert rc not in (0, None), text
    assert "Traceback" not in text, text
    errors = [line for line in err if " error: " in line]
    assert len(errors) == 1, text
    other = [line for line in err if line not in errors and not line.startswith(("usage:", " "))
             and not re.fullmatch(r"tfe-predict: \d+ of \d+ images failed", line)]
    assert not other, text  # nothing but argparse's usage (or the failure count) besides
    assert errors[0].startswith(("tfe-train: error: ", "tfe-predict: error: ")), text
    assert expect in errors[0], text
    if before is not None:
        assert _tree_hash(inputs) == before, "input files changed"
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_the_table_is_large_enough():
    assert len(CASES) >= 40


# ---- inputs that must be accepted (correctly) -------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_gray_is_scaled_by_bit_depth(tmp_path, fmt):
    v8 = np.arange(256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / f"face16.{fmt.lower()}"
    Image.fromarray(v8 * 257).save(path, fmt)  # the 8-bit values, written as 16 bits
    assert Image.open(path).mode == "I;16"
    got = read_image(path)
    assert got.dtype == np.uint8 and np.array_equal(got, v8)


def test_sixteen_bit_pgm_with_low_maxval(tmp_path):
    """Pillow scales a PGM's maxval (here 12 bits) to 0-65535; white stays white."""
    v = np.array([[0, 2048, 4095]], ">u2")
    path = tmp_path / "face12.pgm"
    path.write_bytes(b"P5 3 1 4095\n" + v.tobytes())
    assert read_image(path).tolist() == [[0, 128, 255]]


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "F"])
def test_image_modes_read_as_8_bit(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 30, 3), np.uint8))
    gray = np.asarray(rgb.convert("L"), np.float32)
    im = Image.fromarray(gray / 255) if mode == "F" else rgb.convert(mode)
    path = tmp_path / ("face.tiff" if mode in ("F", "CMYK") else "face.png")
    im.save(path)
    got = read_image(path)
    assert got.dtype == np.uint8 and got.shape[:2] == (20, 30)
    if mode in ("L", "LA", "F"):
        assert np.abs(got.astype(int) - gray).max() <= 1
    if mode in ("RGB", "RGBA"):
        assert np.array_equal(got, np.asarray(rgb))


def test_bomb_limit_is_checked_from_the_header(tmp_path):
    path = tmp_path / "big.png"
    _png_declaring(path, 8192, 8193)
    assert 8192 * 8193 > MAX_PIXELS
    with pytest.raises(BadImage, match=r"big\.png: image too large \(8192x8193"):
        read_image(path)


def test_hidden_and_system_entries_are_counted_not_used(tmp_path):
    rng = np.random.default_rng(0)
    root = make_ck(tmp_path / "ck", rng)
    _png(root / "__MACOSX" / "anger" / "._S100_001_00000000.png", rng)
    _png(root / "@eaDir" / "x.png", rng)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "anger" / "Thumbs.db").write_bytes(b"\0")
    (root / "anger" / "._S100_001_00000000.png").write_bytes(b"\0")
    (root / "README.txt").write_text("a licence\n")
    logs = []
    data = load_ckplus(root, log=logs.append)
    assert data.classes == ["anger", "happy", "surprise"] and len(data) == 18
    assert sorted(set(data.subjects)) == ["S100", "S101", "S102"]
    assert len(logs) == 1, logs
    assert "ignored 5 hidden/system entries" in logs[0] and "1 non-image" in logs[0]


def test_identity_sets_ignore_hidden_folders(tmp_path):
    rng = np.random.default_rng(0)
    root = make_people(tmp_path / "ids", rng)
    _png(root / "__MACOSX" / "p0" / "0.png", rng)
    _png(root / "__MACOSX" / "p0" / "1.png", rng)
    logs = []
    data = load_person_folders(root, log=logs.append)
    assert data.num_classes == 3 and not any("MACOSX" in c for c in data.classes)
    assert len(logs) == 1 and "1 hidden/system entry" in logs[0]


def test_predict_reads_sixteen_bit_like_eight_bit(tmp_path, model_file, capsys):
    """The bug of issue 11: a 16-bit face was clipped to 255 (white) and predicted anyway."""
    v8 = np.random.default_rng(3).integers(0, 256, (48, 48)).astype(np.uint16)
    Image.fromarray(v8.astype(np.uint8)).save(tmp_path / "a8.png")
    Image.fromarray(v8 * 257).save(tmp_path / "a16.png")
    assert cli.predict_main([str(model_file), str(tmp_path / "a8.png"),
                             str(tmp_path / "a16.png"), "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["faces"][0]["emotions"] == rows[1]["faces"][0]["emotions"]


def test_set_num_threads_refuses_too_many():
    before = _native.get_num_threads()
    for n in (0, -1, _native.MAX_NUM_THREADS + 1, 100000):
        with pytest.raises(ValueError, match=r"\[set_num_threads\] n must be between 1 and"):
            _native.set_num_threads(n)
    assert _native.get_num_threads() == before


# ---- the real console scripts ------------------------------------------------------------


def _script(main, *argv, env=None):
    code = f"import sys; from tfe.cli import {main}; sys.exit({main}(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_script_threads_100000_is_an_argument_error(tmp_path):
    r = _script("train_main", "--threads", "100000", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("tfe-train: error: argument --threads: must be "
                                                "between 1 and 1024")


def test_script_bad_image_exits_1_with_one_line(tmp_path, model_file):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    r = _script("predict_main", str(model_file), str(tmp_path / "bad.png"))
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfe-predict: error: ") and "bad.png" in lines[0]


def test_omp_num_threads_above_the_cap_does_not_crash():
    code = ("import numpy as np, tfe; from tfe import _native as n; "
            "x = np.ones((2, 4, 8, 8), np.float32); w = np.ones((4, 4, 3, 3), np.float32); "
            "n.conv2d_forward(x, w, None, stride=1, pad=1); print(tfe.get_num_threads())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "100000"}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == _native.MAX_NUM_THREADS
