"""Malformed model files, one case per kind, through BOTH readers: the Python reader
(tfe.modelfile.load_model) and the C API (libtfe's tfe_model_load, through ctypes). For every
case both must refuse the file with one line that names it, the same message and the same
status, and tfe-predict must exit non-zero with that line on stderr and no traceback.
The limits both readers apply are read out of the C++ sources and compared with Python's.
"""

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_seeds import STATUS, build, join, split, tensors_of, write_seeds
from tfe import cli, model_reader
from tfe.model_reader import ModelFileError
from tfe.modelfile import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return write_seeds(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "face.pgm"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 40), np.uint8)
    path.write_bytes(b"P5\n40 40\n255\n" + pixels.tobytes())
    return path


# ---- mutations of a good resnet12 file's bytes --------------------------------------------------
def edit_header(fn):
    def make(data):
        header, body = split(data)
        fn(header)
        return join(header, body)
    return make


def edit_tensors(fn):
    def make(data):
        tensors, meta = tensors_of(data)
        fn(tensors, meta)
        return build(tensors, meta)
    return make


def edit_meta_json(key, fn):
    def edit(tensors, meta):
        value = json.loads(meta[key])
        fn(value)
        meta[key] = json.dumps(value)
    return edit_tensors(edit)


def legacy(edit):
    """``edit`` applied to the file as tfe wrote it before the layer list was stored (the
    network then comes from the architecture JSON)."""
    def without_layers(tensors, meta):
        meta.pop("layers")
        edit(tensors, meta)
    return edit_tensors(without_layers)


def edit_arch(fn):
    """An edit of the architecture JSON of a file without a layer list."""
    def edit(tensors, meta):
        value = json.loads(meta["architecture"])
        fn(value)
        meta["architecture"] = json.dumps(value)
    return legacy(edit)


def edit_layers(fn):
    def edit(tensors, meta):
        value = json.loads(meta["layers"])
        fn(value)
        meta["layers"] = json.dumps(value)
    return edit_tensors(edit)


def raw_header(text):
    def make(data):
        return join(None, split(data)[1], raw=text)
    return make


def set_value(name, index, value):
    def edit(tensors, meta):
        tensors[name].reshape(-1)[index] = value
    return edit_tensors(edit)


def overlap(h):
    h["stem_bn.bias"]["data_offsets"] = h["stem_bn.weight"]["data_offsets"]


def gap(h):
    last = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
    b, e = h[last]["data_offsets"]
    h[last]["data_offsets"] = [b + 4, e + 4]


def shift_gap(data):
    header, body = split(data)
    gap(header)
    return join(header, body + b"\0" * 4)


def tensor_named(name):
    return edit_tensors(lambda t, m: t.update({name: np.zeros(2, np.float32)}))


def wrong_logits(tensors, meta):
    tensors["selftest.logits"] += 1.0


# (case id, mutation of the file bytes, or a function of the good file's folder giving the
# path to load; expected status; expected fragment of the message)
CASES = [
    ("empty-file", lambda d: b"", "TFE_ERR_FORMAT", "truncated (0 bytes"),
    ("truncated-length", lambda d: d[:5], "TFE_ERR_FORMAT", "truncated (5 bytes"),
    ("truncated-header", lambda d: d[:200], "TFE_ERR_FORMAT", "exceeds the file"),
    ("truncated-data", lambda d: d[:-1000], "TFE_ERR_FORMAT", "outside the data section"),
    ("header-length-beyond-file", lambda d: struct.pack("<Q", len(d)) + d[8:], "TFE_ERR_FORMAT",
     "exceeds the file"),
    ("header-length-beyond-limit", lambda d: struct.pack("<Q", 1 << 62) + d[8:],
     "TFE_ERR_FORMAT", "exceeds the limit of 104857600 bytes"),
    ("header-too-small", lambda d: struct.pack("<Q", 1) + b"{", "TFE_ERR_FORMAT", "too small"),
    ("not-json", raw_header(b"{tensors: 1}"), "TFE_ERR_FORMAT",
     "invalid JSON (expected a string key"),
    ("not-an-object", raw_header(b"[1, 2]"), "TFE_ERR_FORMAT", "header is not a JSON object"),
    ("trailing-comma", raw_header(b'{"__metadata__":{"format":"tfe-1"},}'), "TFE_ERR_FORMAT",
     "invalid JSON"),
    ("nan-literal", raw_header(b'{"x":NaN}'), "TFE_ERR_FORMAT", "unexpected character"),
    ("number-out-of-range", raw_header(b'{"x":1e400}'), "TFE_ERR_FORMAT", "number out of range"),
    ("nested-header", raw_header(b"[" * 100000 + b"]" * 100000), "TFE_ERR_FORMAT",
     "nesting deeper than 64"),
    ("nested-metadata", edit_tensors(lambda t, m: m.update(architecture="[" * 5000 + "]" * 5000)),
     "TFE_ERR_FORMAT", "metadata architecture: invalid JSON (nesting deeper than 64"),
    ("duplicate-key", raw_header(b'{"__metadata__":{"format":"tfe-1","format":"tfe-1"}}'),
     "TFE_ERR_FORMAT", 'duplicate key "format"'),
    ("bad-utf8", raw_header(b'{"\xc3\x28":1}'), "TFE_ERR_FORMAT", "invalid UTF-8"),
    ("lone-surrogate", raw_header(b'{"\\ud800":1}'), "TFE_ERR_FORMAT", "unpaired high surrogate"),
    ("no-metadata", edit_header(lambda h: h.pop("__metadata__")), "TFE_ERR_FORMAT",
     'no "format" in __metadata__'),
    ("wrong-format-tag", edit_tensors(lambda t, m: m.update(format="pt-1")), "TFE_ERR_FORMAT",
     'not a tfe model file (format "pt-1"'),
    ("newer-format", edit_tensors(lambda t, m: m.update(format="tfe-3")), "TFE_ERR_VERSION",
     '"tfe-3" is not supported'),
    ("metadata-not-string", edit_header(lambda h: h["__metadata__"].update(format=1)),
     "TFE_ERR_FORMAT", 'is not a string'),
    ("unknown-dtype", edit_header(lambda h: h["fc.bias"].update(dtype="F16")), "TFE_ERR_FORMAT",
     'unsupported dtype "F16"'),
    ("dtype-f64", edit_tensors(lambda t, m: t.update(
        {"fc.weight": t["fc.weight"].astype(np.float64)})),
     "TFE_ERR_FORMAT", "tensor 'fc.weight' has dtype F64, expected F32"),
    ("dtype-i32", edit_tensors(lambda t, m: t.update({"fc.bias": t["fc.bias"].astype(np.int32)})),
     "TFE_ERR_FORMAT", "tensor 'fc.bias' has dtype I32, expected F32"),
    ("size-mismatch", edit_header(lambda h: h["fc.bias"].update(shape=[9])), "TFE_ERR_FORMAT",
     "32 bytes do not hold F32 shape [9] (36 bytes)"),
    ("overlap", edit_header(overlap), "TFE_ERR_FORMAT", "overlap tensor 'stem_bn.bias'"),
    ("gap", shift_gap, "TFE_ERR_FORMAT", "leave a gap (bytes"),
    ("bytes-after-last-tensor", lambda d: d + b"\0" * 8, "TFE_ERR_FORMAT",
     "the data section has 8 bytes after the last tensor"),
    ("offsets-reversed", edit_header(lambda h: h["fc.bias"].update(
        data_offsets=h["fc.bias"]["data_offsets"][::-1])), "TFE_ERR_FORMAT",
     "outside the data section"),
    ("negative-dim", edit_header(lambda h: h["fc.bias"].update(shape=[-8])), "TFE_ERR_FORMAT",
     "a shape entry is not a non-negative integer"),
    ("huge-shape", edit_header(lambda h: h["fc.weight"].update(shape=[1 << 40, 1 << 40])),
     "TFE_ERR_FORMAT", "is too large"),
    ("shape-beyond-int64", edit_header(lambda h: h["fc.weight"].update(shape=[2**64 + 1])),
     "TFE_ERR_FORMAT", "a shape entry is not a non-negative integer"),
    ("rank-too-high", edit_header(lambda h: h["fc.bias"].update(shape=[1] * 9 + [8])),
     "TFE_ERR_FORMAT", "rank 10 exceeds 8"),
    ("nan-weight", set_value("blocks.0.conv1.weight", 7, np.nan), "TFE_ERR_FORMAT",
     "tensor 'blocks.0.conv1.weight' holds a non-finite value (NaN) at index 7"),
    ("inf-weight", set_value("fc.bias", 2, np.inf), "TFE_ERR_FORMAT",
     "tensor 'fc.bias' holds a non-finite value (infinity) at index 2"),
    ("nan-selftest-input", set_value("selftest.input", 0, np.nan), "TFE_ERR_FORMAT",
     "tensor 'selftest.input' holds a non-finite value (NaN)"),
    ("missing-tensor", edit_tensors(lambda t, m: t.pop("blocks.0.bn1.running_var")),
     "TFE_ERR_FORMAT", "missing tensor 'blocks.0.bn1.running_var'"),
    ("missing-selftest", edit_tensors(lambda t, m: t.pop("selftest.logits")), "TFE_ERR_FORMAT",
     "missing tensor 'selftest.logits'"),
    ("extra-tensor", tensor_named("extra.weight"), "TFE_ERR_FORMAT",
     "unexpected tensor 'extra.weight' (shape [2]) for this architecture"),
    ("control-characters-in-name", tensor_named("evil\nname\x7f"), "TFE_ERR_FORMAT",
     "unexpected tensor 'evil\\x0aname\\x7f'"),
    ("wrong-shape", edit_tensors(lambda t, m: t.update(
        {"fc.weight": t["fc.weight"].reshape(4, 128)})),
     "TFE_ERR_FORMAT", "tensor 'fc.weight' has shape [4, 128], expected [8, 64]"),
    ("other-architecture", edit_arch(lambda a: a.update(
        name="resnet18", blocks=[3, 3, 2])), "TFE_ERR_FORMAT",
     "tensor 'blocks.2.conv1.weight' has shape [32, 16, 3, 3], expected [16, 16, 3, 3]"),
    ("deepid-architecture", legacy(lambda t, m: m.update(architecture=json.dumps(
        {"name": "deepid", "num_identities": 8}))), "TFE_ERR_FORMAT",
     "missing tensor 'conv1.weight'"),
    ("unknown-architecture", edit_arch(lambda a: a.update(name="vgg16")),
     "TFE_ERR_UNSUPPORTED", 'unknown architecture "vgg16"'),
    ("architecture-not-json", edit_tensors(lambda t, m: m.update(architecture='{"name":')),
     "TFE_ERR_FORMAT", "metadata architecture: invalid JSON"),
    ("no-architecture", edit_tensors(lambda t, m: m.pop("architecture")), "TFE_ERR_FORMAT",
     'missing metadata "architecture"'),
    ("huge-num-classes", edit_arch(lambda a: a.update(num_classes=10**12)),
     "TFE_ERR_FORMAT", '"num_classes" is not an integer in 1..1048576'),
    ("num-classes-at-limit", edit_arch(lambda a: a.update(num_classes=1 << 20)),
     "TFE_ERR_FORMAT", "tensor 'fc.weight' has shape [8, 64], expected [1048576, 64]"),
    ("bad-blocks", edit_arch(lambda a: a.update(blocks=[1000])),
     "TFE_ERR_FORMAT", "a stage length is not an integer in 0..64"),
    ("colour-input", edit_arch(lambda a: a.update(in_channels=3)),
     "TFE_ERR_UNSUPPORTED", "architecture has 3 input channels"),
    # the layer list (resnet12: 0 stem conv, 1 bn, 2 relu, 3-7 blocks, 8 pool, 9 fc)
    ("layers-not-json", edit_tensors(lambda t, m: m.update(layers="[{")), "TFE_ERR_FORMAT",
     "metadata layers: invalid JSON"),
    ("layers-not-a-list", edit_tensors(lambda t, m: m.update(layers="{}")), "TFE_ERR_FORMAT",
     "layers: not a list of 1 to 4096 layers"),
    ("layers-empty", edit_tensors(lambda t, m: m.update(layers="[]")), "TFE_ERR_FORMAT",
     "layers: not a list of 1 to 4096 layers"),
    ("layer-not-an-object", edit_layers(lambda ls: ls.__setitem__(2, "relu")), "TFE_ERR_FORMAT",
     "layers[2]: not a JSON object"),
    ("layer-without-kind", edit_layers(lambda ls: ls[2].pop("kind")), "TFE_ERR_FORMAT",
     'layers[2]: missing "kind"'),
    ("unknown-layer-kind", edit_layers(lambda ls: ls[3].update(kind="foo")), "TFE_ERR_FORMAT",
     'layers[3]: unknown kind "foo"'),
    ("layer-input-later", edit_layers(lambda ls: ls[3].update(input=5)), "TFE_ERR_FORMAT",
     'layers[3]: "input" is not an integer in -1..2'),
    ("bad-eps", edit_layers(lambda ls: ls[1].update(eps=0)), "TFE_ERR_FORMAT",
     'layers[1]: "eps" is not a number in (0, 1]'),
    ("eps-not-a-number", edit_layers(lambda ls: ls[4].update(eps="1e-5")), "TFE_ERR_FORMAT",
     'layers[4]: "eps" is not a number in (0, 1]'),
    ("bad-stride", edit_layers(lambda ls: ls[0].update(stride=0)), "TFE_ERR_FORMAT",
     'layers[0]: "stride" is not an integer in 1..16'),
    ("bias-not-a-flag", edit_layers(lambda ls: ls[0].update(bias=0)), "TFE_ERR_FORMAT",
     'layers[0]: "bias" is not true or false'),
    ("layer-name-missing", edit_layers(lambda ls: ls[9].pop("name")), "TFE_ERR_FORMAT",
     'layers[9]: "name" is not a string'),
    ("channels-mismatch", edit_layers(lambda ls: ls[1].update(channels=32)), "TFE_ERR_FORMAT",
     'layers[1]: "channels" is 32 where layers[0] has 16'),
    ("colour-layer", edit_layers(lambda ls: ls[0].update(in_channels=3)), "TFE_ERR_FORMAT",
     'layers[0]: "in_channels" is 3 where the input has 1'),
    ("unrunnable-stem", edit_layers(lambda ls: ls[0].update(stride=2)), "TFE_ERR_UNSUPPORTED",
     "layers[0]: this library runs ResNet stems of a 3x3 stride-1 padding-1 convolution "
     "without bias here"),
    ("rewired-layer", edit_layers(lambda ls: ls[5].update(input=3)), "TFE_ERR_UNSUPPORTED",
     'layers[5]: expected a "residual_block" layer reading layers[4] (this library runs'),
    ("layer-list-cut-short", edit_layers(lambda ls: ls.pop()), "TFE_ERR_UNSUPPORTED",
     'layers: the list ends where a "linear" layer reading layers[8] is expected'),
    ("layer-after-output", edit_layers(lambda ls: ls.append({"kind": "relu"})),
     "TFE_ERR_UNSUPPORTED", "layers[10]: follows the network's output"),
    ("renamed-layer", edit_layers(lambda ls: ls[9].update(name="head")), "TFE_ERR_FORMAT",
     "missing tensor 'head.weight'"),
    ("layers-missing-in-tfe-2", legacy(lambda t, m: m.update(format="tfe-2")), "TFE_ERR_FORMAT",
     'missing metadata "layers"'),
    ("input-not-square", edit_meta_json("preprocessing", lambda p: p.update(input_size=[48, 40])),
     "TFE_ERR_UNSUPPORTED", "input size 48x40"),
    ("input-too-large", edit_meta_json("preprocessing", lambda p: p.update(input_size=[10**9] * 2)),
     "TFE_ERR_UNSUPPORTED", "square inputs up to 512"),
    ("labels-mismatch", edit_meta_json("preprocessing", lambda p: p.update(labels=["a", "b"])),
     "TFE_ERR_FORMAT", "2 labels for a network with 8 outputs"),
    ("zero-std", set_value("preprocess.std", 5, 0.0), "TFE_ERR_FORMAT",
     "preprocess.std must lie in [0.00391, 256]"),
    ("tiny-std", set_value("preprocess.std", 5, 1e-40), "TFE_ERR_FORMAT",
     "preprocess.std must lie in [0.00391, 256]"),
    ("mean-not-a-pixel-mean", set_value("preprocess.mean", 3, -1e30), "TFE_ERR_FORMAT",
     "preprocess.mean must lie in [0, 255]"),
    ("failed-selftest", edit_tensors(wrong_logits), "TFE_ERR_SELFTEST",
     "self-test failed: max |logit difference| 1 exceeds the tolerance"),
    ("directory", lambda folder: folder, "TFE_ERR_IO", "cannot read (Is a directory)"),
    ("missing-file", lambda folder: folder / "nope.safetensors", "TFE_ERR_IO",
     "cannot open (No such file or directory)"),
]


def _path_for(case, make, seeds, tmp_path):
    good = seeds["resnet12"]
    if case in ("directory", "missing-file"):
        return make(tmp_path)
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(make(good.read_bytes()))
    return path


@pytest.mark.parametrize("case,make,status,fragment", CASES, ids=[c[0] for c in CASES])
def test_both_readers_refuse_with_the_same_line(c_api, seeds, tmp_path, image, capsys, case, make,
                                                status, fragment):
    path = _path_for(case, make, seeds, tmp_path)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    assert fragment in message, message
    assert info.value.status == status

    c_status, c_message, handle = c_api.load(path)
    assert handle is None
    assert c_status == STATUS[status], c_message
    assert c_message == message

    with pytest.raises(SystemExit) as exit_info:  # tfe-predict, in this process
        cli.predict_main(["--model", str(path), str(image)])
    assert exit_info.value.code == f"tfe-predict: error: {message}"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("case", ["nan-weight", "failed-selftest", "nested-header", "directory"])
def test_tfe_predict_exits_with_one_line(seeds, tmp_path, image, case):
    make = next(c[1] for c in CASES if c[0] == case)
    path = _path_for(case, make, seeds, tmp_path)
    r = subprocess.run([sys.executable, "-c", "import sys; from tfe.cli import predict_main; "
                        "sys.exit(predict_main())", "--model", str(path), str(image)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and r.stdout == ""
    lines = r.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith(f"tfe-predict: error: {path}: "), r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("name", ["resnet12", "resnet18-2", "deepid", "tfe"])
def test_good_files_load_in_both_readers(c_api, seeds, image, capsys, name):
    model = load_model(seeds[name])
    assert model.selftest() <= model_reader.SELFTEST_TOLERANCE
    status, message, handle = c_api.load(seeds[name])
    assert status == 0, message
    c_api.free(handle)
    assert cli.predict_main([str(seeds[name]), str(image)]) == 0
    assert "class0" in capsys.readouterr().out


def test_the_reader_checks_exactly_the_tensors_the_model_holds(seeds):
    """The validator's list of tensors (a port of graph.cpp) is the Python model's state_dict
    plus the preprocessing and self-test tensors, for every architecture."""
    for path in seeds.values():
        c = model_reader.read_container(path)
        valid = model_reader.validate_model(c)
        m = load_model(path).model
        assert set(valid.tensors) == set(m.state_dict()) | {
            "preprocess.mean", "preprocess.std", "selftest.input", "selftest.logits"}


def _cpp_constant(name):
    """The value of `constexpr ... name = <expr>;` in csrc/infer (integer or double)."""
    for src in (ROOT / "csrc" / "infer").glob("*.[ch]*"):
        m = re.search(rf"constexpr [\w:]+ {name} = ([^;]+);", src.read_text())
        if m:
            expr = re.sub(r"(\d)ull\b", r"\1", m.group(1))
            expr = re.sub(r"(?:uint64_t|size_t)\{(\d+)\}", r"\1", expr)
            return eval(expr, {})  # a constant expression of numbers, << and /
    raise AssertionError(f"{name} not found in csrc/infer")


@pytest.mark.parametrize("cpp,python", [
    ("kMaxHeaderBytes", "MAX_HEADER_BYTES"), ("kMaxFileBytes", "MAX_FILE_BYTES"),
    ("kMaxRank", "MAX_RANK"), ("kMaxNumel", "MAX_NUMEL"), ("kMaxInput", "MAX_INPUT"),
    ("kMaxClasses", "MAX_CLASSES"), ("kMaxStageBlocks", "MAX_STAGE_BLOCKS"),
    ("kSelftestTolerance", "SELFTEST_TOLERANCE"), ("kMinStd", "MIN_STD"), ("kMaxStd", "MAX_STD"),
    ("kMaxLayers", "MAX_LAYERS"), ("kMaxChannels", "MAX_CHANNELS"), ("kMaxKernel", "MAX_KERNEL"),
    ("kMaxStride", "MAX_STRIDE"), ("kMaxPadding", "MAX_PADDING"), ("kMaxFeatures", "MAX_FEATURES"),
    ("kDefaultEps", "DEFAULT_EPS"),
    ("kMaxDepth", None), ("kMaxShown", None)])
def test_limits_are_the_same_in_both_readers(cpp, python):
    from tfe import strict_json

    want = {"kMaxDepth": strict_json.MAX_DEPTH, "kMaxShown": strict_json.MAX_SHOWN}.get(cpp)
    assert _cpp_constant(cpp) == (getattr(model_reader, python) if python else want)


def test_weights_that_overflow_on_images_are_an_error_not_nan(c_api, tmp_path, capsys):
    """Finite weights that pass the self-test (standard-normal probe) can still overflow
    float32 on real pixels (here normalised to 2^16): both readers and tfe-predict report it
    as an error; probabilities are never NaN."""
    from tfe import models, modelfile
    from tfe.data.transforms import Normalizer

    m = models.resnet12(3)
    norm = Normalizer(np.zeros((48, 48), np.float32), np.full((48, 48), 1 / 256, np.float32))
    path = tmp_path / "overflow.safetensors"
    modelfile.save_model(path, m, norm, ["a", "b", "c"])
    scale = 1e35 / float(np.abs(load_model(path).selftest_logits).max())
    state = {k: np.array(v, copy=True) for k, v in m.state_dict().items()}
    state["fc.weight"] *= scale
    state["fc.bias"] *= scale
    m.load_state_dict(state)
    modelfile.save_model(path, m, norm, ["a", "b", "c"])

    white = np.full((48, 48), 255, np.uint8)
    model = load_model(path)  # the self-test passes
    with pytest.raises(ModelFileError) as info:
        model.probabilities(white[None])
    assert str(info.value) == f"{path}: image 0: the model computes a non-finite logit " \
                              "(its weights overflow float32)"

    status, message, handle = c_api.load(path)
    assert status == 0, message
    try:
        probs = np.zeros(3, np.float32)
        status = c_api.lib.tfe_predict(handle, white.ctypes.data, 48, 48, 48, 0, probs.ctypes.data)
        assert status == STATUS["TFE_ERR_FORMAT"]
        assert c_api.lib.tfe_last_error().decode() == str(info.value)
    finally:
        c_api.free(handle)

    image = tmp_path / "white.pgm"
    image.write_bytes(b"P5\n48 48\n255\n" + white.tobytes())
    with pytest.raises(SystemExit) as exit_info:
        cli.predict_main(["--model", str(path), str(image)])
    assert exit_info.value.code == f"tfe-predict: error: {info.value}"
    assert capsys.readouterr().out == ""
