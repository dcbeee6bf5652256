"""The embeddable C++ library (libtfe, tfe::tfe): built as a consumer would build it.

examples/cpp is configured with CMake against the INSTALLED package
(``-Dtfe_DIR=$(python -m tfe --cmakedir)``); when this tfe has no installed C++ library (a
development build laid out by hand), the library is built and installed from this source
tree into a temporary prefix first, so the same consumer path is exercised. The program
then classifies PGM/PPM images with models trained by the Python side, and must agree with
tfe's Python prediction to 1e-5; its self-test must pass; and malformed model files must
give a clean error status and message, never a crash.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfe import models, modelfile
from tfe.data.transforms import Normalizer, resize_gray

from conftest import cxx_compiler, isa_flags, run_checked
from helpers import stage_dir
from model_seeds import join, split

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpp"

pytestmark = [pytest.mark.slow, pytest.mark.numerics]


def _generator_args():
    return ["-G", "Ninja"] if shutil.which("ninja") else []


@pytest.fixture(scope="module")
def classify(tmp_path_factory, tfe_cmake_dir):
    """Path of the built examples/cpp `classify` program."""
    cmake = shutil.which("cmake")
    if not (EXAMPLE / "CMakeLists.txt").is_file():
        pytest.skip(f"the example sources are not here ({EXAMPLE})")
    work = tmp_path_factory.mktemp("cpp")
    tfe_dir = tfe_cmake_dir
    build = work / "example"
    run_checked([cmake, "-S", EXAMPLE, "-B", build, *_generator_args(), f"-Dtfe_DIR={tfe_dir}",
          "-DCMAKE_BUILD_TYPE=Release"])
    run_checked([cmake, "--build", build, "--parallel", "2"])
    exe = build / "classify"
    assert exe.is_file()
    return exe


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Model files trained by tfe-train (tiny synthetic run): identity (DeepID), emotion
    (ResNet12) and joint (TFE)."""
    from tfe.cli import train_main

    out = tmp_path_factory.mktemp("run")
    train_main(["--out", str(out), "--people", "4", "2", "2", "6", "--per-person", "2", "4",
                "--epochs-identity", "1", "--epochs-emotion", "1", "--epochs-joint", "1",
                "--seeds", "0", "--no-progress", "--no-controls"])
    files = {k: stage_dir(out, k) / f"{k}.safetensors" for k in ("identity", "emotion", "joint")}
    assert all(f.is_file() for f in files.values())
    return files


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A ResNet18 model file with non-trivial batch-norm statistics."""
    rng = np.random.default_rng(7)
    m = models.resnet18(8)
    state = {}
    for k, v in m.state_dict().items():
        v = np.array(v, copy=True)
        if k.endswith("running_var"):
            v = rng.uniform(0.5, 2.0, v.shape).astype(np.float32)
        elif k.endswith("running_mean") or (k.endswith("bias") and v.ndim == 1):
            v = rng.normal(0, 0.2, v.shape).astype(np.float32)
        state[k] = v
    m.load_state_dict(state)
    norm = Normalizer.fit(rng.integers(0, 256, (16, 48, 48), dtype=np.uint8))
    path = tmp_path_factory.mktemp("r18") / "resnet18.safetensors"
    modelfile.save_model(path, m, norm, [f"class{i}" for i in range(8)])
    return path


def _write_pnm(path, img, ascii=False):
    h, w = img.shape[:2]
    color = img.ndim == 3
    magic = {(False, False): b"P5", (True, False): b"P6", (False, True): b"P2",
             (True, True): b"P3"}[(color, ascii)]
    with open(path, "wb") as f:
        f.write(magic + b"\n# written by test_cpp_library\n%d %d\n255\n" % (w, h))
        if ascii:
            f.write(" ".join(str(v) for v in img.reshape(-1)).encode() + b"\n")
        else:
            f.write(img.tobytes())


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """(paths, arrays): gray and colour, binary and ASCII PNM, square, tall and wide, smaller
    than, equal to and larger than the 48x48 input (both resampling branches, and the direct
    copy of a centre crop that is already 48 pixels wide, gray and colour)."""
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("images")
    specs = [(48, 48, 1, False), (61, 37, 1, False), (150, 200, 3, False), (96, 96, 1, True),
             (100, 130, 3, True), (20, 20, 3, False), (333, 251, 1, False), (1, 1, 1, False),
             (48, 75, 3, False), (70, 48, 1, False)]
    paths, arrays = [], []
    for i, (h, w, c, asc) in enumerate(specs):
        y, x = np.mgrid[0:h, 0:w]
        base = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 5.0)
        img = np.clip(base[..., None] + rng.normal(0, 25, (h, w, c)), 0, 255).astype(np.uint8)
        img = img[..., 0] if c == 1 else img
        path = folder / f"face{i}.{'pgm' if c == 1 else 'ppm'}"
        _write_pnm(path, img, asc)
        paths.append(path)
        arrays.append(img)
    return paths, arrays


def _cpp_probabilities(exe, model, paths):
    out = run_checked([exe, model, *paths]).stdout
    rows = []
    for line, path in zip(out.strip().split("\n"), paths):
        fields = line.split("\t")
        assert fields[0] == str(path)
        rows.append([float(f.split("=", 1)[1]) for f in fields[1:-1]])
    return np.array(rows)


@pytest.mark.parametrize("which", ["identity", "emotion", "joint", "resnet18"])
def test_probabilities_match_python(classify, trained, resnet18_file, images, which):
    path = resnet18_file if which == "resnet18" else trained[which]
    paths, arrays = images
    lm = modelfile.LoadedModel(path)
    size = lm.input_size[0]
    expected = lm.probabilities(np.stack([resize_gray(a, size) for a in arrays]))
    got = _cpp_probabilities(classify, path, paths)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # The labels printed are the model's, in its order.
    first = run_checked([classify, path, paths[0]]).stdout.split("\t")[1:-1]
    assert [f.split("=")[0] for f in first] == lm.classes


@pytest.mark.parametrize("which", ["identity", "emotion", "joint"])
def test_selftest_passes_in_cpp(classify, trained, which):
    r = run_checked([classify, "--selftest", trained[which]])
    assert r.stdout.startswith("selftest: ok"), r.stdout
    diff = float(r.stdout.split()[-1])
    assert diff <= 1e-4


def test_threads_do_not_change_the_answer(classify, trained, images):
    paths, _ = images
    one = _cpp_probabilities(classify, trained["joint"], paths)
    r = run_checked([classify, "--threads", "1", trained["joint"], *paths])
    two = np.array([[float(f.split("=", 1)[1]) for f in line.split("\t")[1:-1]]
                    for line in r.stdout.strip().split("\n")])
    np.testing.assert_allclose(one, two, rtol=0, atol=1e-6)


# ---- malformed model files ------------------------------------------------------------------

def _edit(fn):
    def make(data):
        header, body = split(data)
        fn(header)
        return join(header, body)
    return make


def _meta(key, value):
    def fn(h):
        if value is None:
            h["__metadata__"].pop(key)
        else:
            h["__metadata__"][key] = value
    return _edit(fn)


def _arch_edit(fn):
    """An edit of the architecture of the file without its layer list (as written before
    lists were stored: the network then comes from the architecture)."""
    def edit(h):
        h["__metadata__"].pop("layers")
        a = json.loads(h["__metadata__"]["architecture"])
        fn(a)
        h["__metadata__"]["architecture"] = json.dumps(a)
    return _edit(edit)


def _raw_header(text):
    def make(data):
        _, body = split(data)
        return join(None, body, raw=text)
    return make


def _first_tensor(h):
    return next(k for k in h if k != "__metadata__")


# (case id, mutation of the file bytes, expected status text, expected message fragment)
MALFORMED = [
    ("empty", lambda d: b"", "malformed model file", "truncated"),
    ("four-bytes", lambda d: d[:4], "malformed model file", "truncated"),
    ("cut-in-header", lambda d: d[:200], "malformed model file", "exceeds the file"),
    ("cut-in-data", lambda d: d[:-1000], "malformed model file", "outside the data section"),
    ("huge-header-length", lambda d: struct.pack("<Q", 1 << 62) + d[8:], "malformed model file",
     "exceeds the limit"),
    ("max-header-length", lambda d: b"\xff" * 8 + d[8:], "malformed model file",
     "exceeds the limit"),
    ("png-magic", lambda d: b"\x89PNG\r\n\x1a\n" + d[8:], "malformed model file",
     "exceeds the limit"),
    ("header-not-json", lambda d: d[:8] + b"x" + d[9:], "malformed model file", "invalid JSON"),
    ("trailing-comma", _raw_header(b'{"__metadata__":{"format":"tfe-1"},}'),
     "malformed model file", "invalid JSON"),
    ("duplicate-key", _raw_header(b'{"__metadata__":{"format":"tfe-1","format":"tfe-1"}}'),
     "malformed model file", "duplicate key"),
    ("deep-nesting", _raw_header(b"[" * 100000 + b"]" * 100000), "malformed model file",
     "nesting deeper"),
    ("bad-utf8", _raw_header(b'{"\xff":1}'), "malformed model file", "UTF-8"),
    ("header-is-array", _raw_header(b"[1, 2]"), "malformed model file",
     "header is not a JSON object"),
    ("no-metadata", _edit(lambda h: h.pop("__metadata__")), "malformed model file",
     "not a tfe model file"),
    ("other-format", _meta("format", "pt-1"), "malformed model file", "not a tfe model file"),
    ("newer-version", _meta("format", "tfe-3"), "unsupported model file version", "tfe-3"),
    ("metadata-not-string", _meta("format", 1), "malformed model file", "is not a string"),
    ("no-architecture", _meta("architecture", None), "malformed model file",
     'missing metadata "architecture"'),
    ("architecture-bad-json", _meta("architecture", '{"name": "resnet12",'),
     "malformed model file", "invalid JSON"),
    ("architecture-unknown", _arch_edit(lambda a: a.update(name="vgg")), "unsupported model",
     "unknown architecture"),
    ("architecture-bad-blocks", _arch_edit(lambda a: a.update(blocks="many")),
     "malformed model file", "blocks"),
    ("architecture-wrong-blocks", _arch_edit(lambda a: a.update(blocks=[3, 3, 2])),
     "malformed model file", "tensor 'blocks.2.conv1.weight' has shape"),
    ("layer-kind-unknown", _edit(lambda h: h["__metadata__"].update(layers=json.dumps(
        [{"kind": "foo"}]))), "malformed model file", 'layers[0]: unknown kind "foo"'),
    ("labels-mismatch", _edit(lambda h: h["__metadata__"].update(preprocessing=json.dumps(
        {"input_size": [48, 48], "grayscale": True, "labels": ["a", "b"]}))),
     "malformed model file", "labels"),
    ("colour-model", _edit(lambda h: h["__metadata__"].update(preprocessing=json.dumps(
        {"input_size": [48, 48], "grayscale": False, "labels": list("abcdefgh")}))),
     "unsupported model", "grayscale"),
    ("wrong-tensor-size", _edit(lambda h: h[_first_tensor(h)].update(shape=[3, 3])),
     "malformed model file", "do not hold"),
    ("wrong-tensor-shape", _edit(lambda h: h["stem_conv.weight"].update(shape=[16, 9])),
     "malformed model file", "has shape"),
    ("negative-dim", _edit(lambda h: h["stem_conv.weight"].update(shape=[-16, 1, 3, 3])),
     "malformed model file", "non-negative integer"),
    ("offsets-outside", _edit(lambda h: h["fc.bias"].update(data_offsets=[10**12, 10**12 + 32])),
     "malformed model file", "outside the data section"),
    ("offsets-reversed", _edit(lambda h: h["fc.bias"].update(
        data_offsets=h["fc.bias"]["data_offsets"][::-1])), "malformed model file",
     "outside the data section"),
    ("unknown-dtype", _edit(lambda h: h["fc.bias"].update(dtype="F16")), "malformed model file",
     "unsupported dtype"),
    ("int-weights", _edit(lambda h: h["fc.bias"].update(dtype="I32")), "malformed model file",
     "expected F32"),
    # A header entry dropped leaves its bytes behind: the ranges no longer tile the data
    # (tests/test_model_file_errors.py drops the bytes too, for "missing tensor").
    ("missing-tensor", _edit(lambda h: h.pop("blocks.0.bn1.running_var")),
     "malformed model file", "leave a gap"),
    ("missing-selftest", _edit(lambda h: h.pop("selftest.logits")), "malformed model file",
     "bytes after the last tensor"),
    ("unexpected-tensor", _edit(lambda h: h.update(extra={"dtype": "U8", "shape": [0],
                                                          "data_offsets": [0, 0]})),
     "malformed model file", "unexpected tensor 'extra'"),
]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    m = models.resnet12(8)
    norm = Normalizer.fit(np.random.default_rng(0).integers(0, 256, (4, 48, 48), np.uint8))
    path = tmp_path_factory.mktemp("small") / "resnet12.safetensors"
    modelfile.save_model(path, m, norm, list("abcdefgh"))
    return path


def _load_only(exe, path):
    """Runs `classify --selftest` on a model file; returns (returncode, stderr)."""
    r = subprocess.run([exe, "--selftest", path], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr


@pytest.mark.parametrize("case,mutate,status,fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_fail_cleanly(classify, small_model, tmp_path, case, mutate, status,
                                      fragment):
    bad = tmp_path / f"{case}.safetensors"
    bad.write_bytes(mutate(small_model.read_bytes()))
    code, err = _load_only(classify, bad)
    assert code == 2, f"exit {code} (negative = killed by a signal); stderr: {err}"
    assert status in err and fragment in err, err


def test_missing_file_is_an_io_error(classify, tmp_path):
    code, err = _load_only(classify, tmp_path / "nope.safetensors")
    assert code == 2 and "cannot read the file" in err and "cannot open" in err, err


def test_good_file_loads_and_wrong_logits_fail_the_selftest(classify, small_model, tmp_path):
    assert _load_only(classify, small_model)[0] == 0
    header, body = split(small_model.read_bytes())
    begin, end = header["selftest.logits"]["data_offsets"]
    logits = np.frombuffer(body[begin:end], np.float32) + 1.0
    body = body[:begin] + logits.astype("<f4").tobytes() + body[end:]
    bad = tmp_path / "wrong-logits.safetensors"
    bad.write_bytes(join(header, body))
    code, err = _load_only(classify, bad)  # loading runs the self-test: refused at load
    assert code == 2 and "self-test failed" in err and str(bad) in err, err


def test_random_corruption_never_crashes(classify, small_model, tmp_path):
    """Byte flips in the header and cuts at random places: a status, never a signal."""
    rng = np.random.default_rng(11)
    data = small_model.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    for i in range(40):
        d = bytearray(data)
        if i % 4 == 3:
            d = d[: int(rng.integers(0, len(d)))]
        else:
            for pos in rng.integers(0, 8 + n, int(rng.integers(1, 6))):
                d[pos] = int(rng.integers(0, 256))
        bad = tmp_path / f"fuzz{i}.safetensors"
        bad.write_bytes(bytes(d))
        code, err = _load_only(classify, bad)
        assert code in (0, 2, 4), f"case {i}: exit {code}; stderr: {err}"
        if code == 2:
            assert "error:" in err


# ---- folded inference (batch norm folded into the convolutions, fused epilogues) -------------

def _calibrated(model, seed):
    """Random BN affine parameters, then running statistics = the batch statistics of one
    training-mode pass (momentum 1): every BN really normalises its input, as after
    training, so folding errors are not hidden by near-identity batch norms."""
    from tfe.function import no_grad
    from tfe.tensor import Tensor

    rng = np.random.default_rng(seed)
    state = {}
    for k, v in model.state_dict().items():
        v = np.array(v, copy=True)
        leaf = k.rsplit(".", 1)[-1]
        if "bn" in k and leaf in ("weight", "bn_weight"):
            v = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
        elif "bn" in k and leaf in ("bias", "bn_bias"):
            v = rng.normal(0, 0.3, v.shape).astype(np.float32)
        state[k] = v
    model.load_state_dict(state)
    modules = [m for _, m in model.named_modules() if hasattr(m, "momentum")]
    saved = [m.momentum for m in modules]
    for m in modules:
        m.momentum = 1.0
    model.train()
    with no_grad():
        model(Tensor(rng.standard_normal((16, 1, 48, 48)).astype(np.float32)))
    for m, mom in zip(modules, saved):
        m.momentum = mom
    model.eval()
    return model


@pytest.fixture(scope="module")
def folded_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("folded")
    norm = Normalizer.fit(np.random.default_rng(0).integers(0, 256, (8, 48, 48), np.uint8))
    built = {"resnet18": models.resnet18(8), "resnet12": models.resnet12(5),
             "deepid": models.DeepID(12),
             "tfe18": models.TFE(models.DeepID(12), models.resnet18(8), 7)}
    paths = {}
    for i, (name, m) in enumerate(built.items()):
        _calibrated(m, 10 + i)
        k = m.arch.get("num_classes", m.arch.get("num_identities"))
        paths[name] = folder / f"{name}.safetensors"
        modelfile.save_model(paths[name], m, norm, [f"c{j}" for j in range(k)])
    return paths


@pytest.fixture(scope="module")
def libtfe(tfe_cmake_dir):
    import ctypes

    libs = sorted(tfe_cmake_dir.parent.parent.glob("libtfe.so*"))
    if not libs:
        pytest.skip(f"no libtfe.so next to {tfe_cmake_dir}")
    lib = ctypes.CDLL(str(libs[0]))
    vp = ctypes.c_void_p
    lib.tfe_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
    lib.tfe_forward.argtypes = [vp, vp, ctypes.c_int, vp]
    lib.tfe_model_free.argtypes = [vp]
    lib.tfe_model_num_classes.argtypes = [vp]
    lib.tfe_last_error.restype = ctypes.c_char_p
    return lib


def _cpp_logits(lib, path, x, threads):
    import ctypes

    m = ctypes.c_void_p()
    assert lib.tfe_model_load(str(path).encode(), ctypes.byref(m)) == 0, lib.tfe_last_error()
    try:
        assert lib.tfe_set_num_threads(threads) == 0
        x = np.ascontiguousarray(x, np.float32)
        out = np.zeros((x.shape[0], lib.tfe_model_num_classes(m)), np.float32)
        assert lib.tfe_forward(m, x.ctypes.data, x.shape[0], out.ctypes.data) == 0, \
            lib.tfe_last_error()
        return out
    finally:
        lib.tfe_model_free(m)
        lib.tfe_set_num_threads(2)


@pytest.mark.parametrize("name", ["resnet18", "resnet12", "deepid", "tfe18"])
def test_folded_forward_matches_python_eval(libtfe, folded_models, name):
    """The library folds every BN into its convolution (and the TFE head's BN1d into its FC)
    and fuses bias/residual/ReLU: the logits must equal Python's eval-mode forward (BN kept
    separate) to float rounding, for batch 1 (one image split over a thread team) and for a
    batch (whole images per thread), with 1, 2 and 3 threads (3: shares of unequal size);
    and the thread count must not change a single bit (every output element is summed by one
    thread in a fixed order)."""
    lm = modelfile.LoadedModel(folded_models[name])
    x = np.random.default_rng(4).standard_normal((5, 1, 48, 48)).astype(np.float32) * 1.5
    want = lm.logits(x)
    scale = max(1.0, float(np.abs(want).max()))
    runs = {}
    for threads in (1, 2, 3):
        one = np.concatenate([_cpp_logits(libtfe, lm.path, x[i:i + 1], threads)
                              for i in range(len(x))])
        batch = _cpp_logits(libtfe, lm.path, x, threads)
        for got in (one, batch):
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * scale)
        runs[threads] = (one, batch)
    for threads in (2, 3):
        for a, b in zip(runs[1], runs[threads]):
            assert np.array_equal(a, b)
    assert np.array_equal(runs[1][0], runs[1][1])


CONV_INFER_TEST = r"""
// conv_infer_run against conv2d_forward + bias + residual + ReLU, on the layouts the
// library uses: a zero-padded map (3x3 stride 1 pad 1, output into a padded map, in place
// over the residual) and dense maps (valid k x k, output dense), K not a multiple of the
// micro-kernel's rows, the work items split in two uneven ranges.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
#include "conv/conv_infer.h"
#include "conv/winograd.h"
#include "ops/cpu_kernels.h"
using namespace tfe::cpu;
static std::mt19937 rng(1);
static float u() { return std::uniform_real_distribution<float>(-1, 1)(rng); }
static int check(const char* what, int C, int K, int H, int k, bool padded, bool res, bool relu) {
  const int p = padded ? 1 : 0, Ho = H + 2 * p - k + 1, T = C * k * k;
  std::vector<float> x(C * H * H), w(K * T), b(K), r(K * Ho * Ho), ref(K * Ho * Ho);
  for (auto& v : x) v = u();
  for (auto& v : w) v = u();
  for (auto& v : b) v = u();
  for (auto& v : r) v = u();
  conv2d_forward(ref.data(), x.data(), w.data(), b.data(), 1, C, H, H, K, k, 1, p);
  for (int i = 0; i < K * Ho * Ho; ++i) {
    if (res) ref[i] += r[i];
    if (relu && ref[i] < 0) ref[i] = 0;
  }
  // Input layout: padded map (row H+1, plane (H+1)^2, data at (r+1)*row+q+1) or dense.
  const long row = padded ? H + 1 : H, plane = padded ? row * row : (long)H * H;
  const long base = padded ? 0 : 0, dbase = padded ? row + 1 : 0;
  std::vector<int> off;
  for (int c = 0; c < C; ++c)
    for (int kh = 0; kh < k; ++kh)
      for (int kw = 0; kw < k; ++kw) off.push_back(c * plane + kh * row + kw);
  const long span = off.back() + conv_infer_span(Ho, row) + 64;
  std::vector<float> xin(C * plane + span, 0.0f);
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < H; ++j) xin[c * plane + dbase + i * row + j] = x[(c * H + i) * H + j];
  // Output: a padded map of the output size when padded (y_row == row), else dense.
  const long yrow = padded ? Ho + 1 : Ho, yplane = padded ? yrow * yrow : (long)Ho * Ho;
  const long ybase = padded ? yrow + 1 : 0;
  std::vector<float> y(K * yplane + 64, 0.0f);
  for (int i = 0; i < K; ++i)
    for (int a = 0; a < Ho; ++a)
      for (int c = 0; c < Ho; ++c) y[i * yplane + ybase + a * yrow + c] = r[(i * Ho + a) * Ho + c];
  std::vector<float> wp(conv_infer_packed_size(K, T));
  conv_infer_pack(wp.data(), w.data(), K, T);
  const int items = conv_infer_items(K, Ho, row), cut = items / 3;
  for (auto [i0, i1] : {std::pair<int, int>{0, cut}, {cut, items}})
    conv_infer_run(y.data(), xin.data() + base, wp.data(), b.data(), res ? y.data() : nullptr,
                   off.data(), K, T, Ho, Ho, row, yplane, ybase, yrow, relu, i0, i1);
  double err = 0, border = 0;
  for (int i = 0; i < K; ++i)
    for (int a = 0; a < Ho; ++a)
      for (int c = 0; c < Ho; ++c)
        err = std::fmax(err, std::fabs(y[i * yplane + ybase + a * yrow + c] - ref[(i * Ho + a) * Ho + c]));
  if (padded) {  // the padding of the output map must still be zero
    for (int i = 0; i < K; ++i)
      for (long q = 0; q < yplane; ++q) {
        const long a = q / yrow - 1, c = q % yrow - 1;
        if (a < 0 || a >= Ho || c < 0 || c >= Ho) border = std::fmax(border, std::fabs(y[i * yplane + q]));
      }
  }
  const bool ok = err < 1e-4 * std::sqrt((double)T) && border == 0;
  std::printf("%s %s C%d K%d H%d k%d: max err %.3g, border %.3g\n", ok ? "ok" : "FAIL", what, C, K, H, k, err, border);
  return ok ? 0 : 1;
}
// winograd_run (F(2x2, 3x3)) on a padded map against conv2d_forward and against conv_infer_run
// (the direct path it replaces in the library): the real shapes (48/24/12 maps, C, K in
// 16..64), C != K, K not a multiple of the micro-kernel's rows, odd sides (the last tile
// row/column half outside the map), in place over the residual, items split unevenly. The
// transforms only add/subtract and halve, so the error is float rounding of sums of 9C terms:
// the same bound as the direct check above; the Winograd-vs-direct difference is also printed.
static int check_wino(int C, int K, int H, bool res, bool relu) {
  const int T = C * 9;
  std::vector<float> x(C * H * H), w(K * T), b(K), r(K * H * H), ref(K * H * H);
  for (auto& v : x) v = u();
  for (auto& v : w) v = u();
  for (auto& v : b) v = u();
  for (auto& v : r) v = u();
  conv2d_forward(ref.data(), x.data(), w.data(), b.data(), 1, C, H, H, K, 3, 1, 1);
  for (int i = 0; i < K * H * H; ++i) {
    if (res) ref[i] += r[i];
    if (relu && ref[i] < 0) ref[i] = 0;
  }
  const long row = H + 1, plane = row * row;
  std::vector<int> off;
  for (int c = 0; c < C; ++c)
    for (int kh = 0; kh < 3; ++kh)
      for (int kw = 0; kw < 3; ++kw) off.push_back(c * plane + kh * row + kw);
  // Padded input, followed by nonzero values (as the next buffer of the library's workspace)
  // past what winograd_run may read: it must not use them.
  const long need = (C - 1) * plane + (H + 1) * row + H + 2;
  std::vector<float> xin(std::max<long>(need, off.back() + conv_infer_span(H, row)) + 256, 0.0f);
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < H; ++j) xin[c * plane + (i + 1) * row + j + 1] = x[(c * H + i) * H + j];
  for (long q = need; q < (long)xin.size(); ++q) xin[q] = 1e30f;
  std::vector<float> y(K * plane + 64, 0.0f), yd;
  for (int i = 0; i < K; ++i)
    for (int a = 0; a < H; ++a)
      for (int c = 0; c < H; ++c) y[i * plane + row + 1 + a * row + c] = r[(i * H + a) * H + c];
  yd = y;
  std::vector<float> up(winograd_packed_size(K, C)), wp(conv_infer_packed_size(K, T));
  winograd_pack(up.data(), w.data(), K, C);
  conv_infer_pack(wp.data(), w.data(), K, T);
  const int items = winograd_items(H), cut = (items + 1) / 3;
  for (auto [i0, i1] : {std::pair<int, int>{0, cut}, {cut, items}})
    winograd_run(y.data(), xin.data(), plane, row, up.data(), b.data(), res ? y.data() : nullptr,
                 K, C, H, plane, row + 1, row, relu, i0, i1);
  std::vector<float> xd(xin);
  for (long q = need; q < (long)xd.size(); ++q) xd[q] = 0.0f;  // direct reads its span
  conv_infer_run(yd.data(), xd.data(), wp.data(), b.data(), res ? yd.data() : nullptr,
                 off.data(), K, T, H, H, row, plane, row + 1, row, relu, 0,
                 conv_infer_items(K, H, row));
  double err = 0, vs_direct = 0, border = 0;
  for (int i = 0; i < K; ++i)
    for (int q = 0; q < plane; ++q) {
      const int a = q / row - 1, c = q % row - 1;
      const float got = y[i * plane + q];
      if (a < 0 || a >= H || c < 0 || c >= H) {
        border = std::fmax(border, std::fabs(got));
        continue;
      }
      err = std::fmax(err, std::fabs(got - ref[(i * H + a) * H + c]));
      vs_direct = std::fmax(vs_direct, std::fabs(got - yd[i * plane + q]));
    }
  const double tol = 1e-4 * std::sqrt((double)T);
  const bool ok = err < tol && vs_direct < tol && border == 0 && std::isfinite(err);
  std::printf("%s winograd C%d K%d H%d: max err %.3g, vs direct %.3g, border %.3g\n",
              ok ? "ok" : "FAIL", C, K, H, err, vs_direct, border);
  return ok ? 0 : 1;
}
int main() {
  int bad = 0;
  bad += check_wino(16, 16, 48, true, true);
  bad += check_wino(32, 32, 24, false, true);
  bad += check_wino(64, 64, 12, true, true);
  bad += check_wino(64, 64, 12, false, false);
  bad += check_wino(32, 64, 12, true, false);
  bad += check_wino(20, 12, 13, false, true);
  bad += check_wino(8, 20, 7, true, true);
  bad += check_wino(3, 5, 1, false, false);
  bad += check_wino(5, 8, 2, true, false);
  bad += check_wino(16, 8, 51, false, true);
  bad += check("padded", 16, 16, 48, 3, true, true, true);
  bad += check("padded", 32, 20, 24, 3, true, false, true);
  bad += check("padded", 64, 64, 12, 3, true, true, false);
  bad += check("padded", 3, 5, 7, 3, true, false, false);
  bad += check("dense", 1, 20, 48, 4, false, false, true);
  bad += check("dense", 20, 40, 22, 3, false, false, true);
  bad += check("dense", 60, 80, 4, 2, false, true, false);
  bad += check("dense", 7, 9, 5, 1, false, false, true);
  return bad;
}
"""


def test_conv_infer_kernel_matches_conv2d(tmp_path):
    """The inference convolution kernel (csrc/conv/conv_infer*.cpp) against the training
    kernel conv2d_forward, compiled from this source tree, with every GEMM micro-kernel the
    CPU has (the AVX-512 one fuses the epilogue in registers; the others use a tile buffer)."""
    cxx = cxx_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    csrc = ROOT / "csrc"
    if not (csrc / "conv" / "conv_infer.cpp").is_file():
        pytest.skip("the source tree is not here")
    (tmp_path / "t.cpp").write_text(CONV_INFER_TEST)
    # conv2d and what it links: the GEMM, the thread count and the convolutions of csrc/conv.
    srcs = [tmp_path / "t.cpp", csrc / "ops" / "conv2d.cpp", csrc / "core" / "threads.cpp",
            *sorted((csrc / "gemm").glob("*.cpp")), *sorted((csrc / "conv").glob("*.cpp"))]
    objs = []
    for src in srcs:
        flags = isa_flags(src)
        obj = tmp_path / (src.stem + ".o")
        run_checked([cxx, "-std=c++17", "-O2", "-fopenmp", f"-I{ROOT / 'csrc'}", *flags, "-c", src,
              "-o", obj])
        objs.append(obj)
    exe = tmp_path / "conv_infer_test"
    run_checked([cxx, "-fopenmp", *objs, "-o", exe])
    for kernel in ("avx512", "avx2", "generic"):  # forced down to what the CPU has
        # conv2d_forward's direct path (its 3x3 stride-1 layers would take Winograd).
        r = subprocess.run([exe], capture_output=True, text=True,
                           env={**os.environ, "TFE_GEMM_KERNEL": kernel,
                                "TFE_CONV_WINOGRAD": "0"})
        assert r.returncode == 0, f"{kernel}:\n{r.stdout}{r.stderr}"
