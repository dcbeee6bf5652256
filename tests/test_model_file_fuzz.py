"""Mutation fuzzing of both model-file readers, for a bounded time on every test run.

C++: tests/fuzz/model_file_fuzz.cpp with the library's sources, built with g++
-fsanitize=address,undefined -fno-sanitize-recover=all, seeded with tiny model files of every
architecture; any memory error, undefined behaviour, internal status, multi-line message or
non-finite prediction fails it. Python: the same seeds, mutated the same ways, through
tfe.modelfile.LoadedModel: every input either loads (having passed its self-test) or raises
model_reader.ModelFileError with a one-line message, never anything else; where the C
library is built, its verdict and message must be the Python reader's.

TFE_FUZZ_SECONDS (default 40 for C++, 25 for Python) and TFE_FUZZ_SEED change the budget
and the inputs (the same seed gives the same inputs).
"""

import os
import random
import re
import shutil
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import cpu_kernel_sources, cxx_compiler, isa_flags, run_checked
from model_seeds import STATUS, write_tiny_seeds
from tfe import model_reader
from tfe.modelfile import LoadedModel

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
HARNESS_SANITIZE = ["-fsanitize=undefined", "-fno-sanitize-recover=all"]

pytestmark = pytest.mark.slow


def _budget(default):
    return float(os.environ.get("TFE_FUZZ_SECONDS", default))


def _seed():
    return int(os.environ.get("TFE_FUZZ_SEED", "1"))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return write_tiny_seeds(tmp_path_factory.mktemp("fuzz-seeds"))


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    """The sanitized fuzzer executable (g++, as in CI; clang would do too)."""
    cxx = shutil.which("g++") or cxx_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    work = tmp_path_factory.mktemp("fuzz-build")
    probe = work / "probe.cpp"
    probe.write_text("int main() { return 0; }\n")
    r = subprocess.run([cxx, *SANITIZE, probe, "-o", work / "probe"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"{cxx} cannot link AddressSanitizer + UBSan here")
    sources = [*sorted((ROOT / "csrc" / "infer").glob("*.cpp")), *cpu_kernel_sources(),
               ROOT / "tests" / "fuzz" / "model_file_fuzz.cpp"]

    def compile_one(src):
        flags = isa_flags(src)
        # The harness itself is not under test: without address instrumentation its copies of
        # the seeds go through libc's memmove, not ASan's slow internal one.
        sanitize = HARNESS_SANITIZE if src.name == "model_file_fuzz.cpp" else SANITIZE
        obj = work / (src.stem + ".o")
        run_checked([cxx, "-std=c++17", "-O1", "-g", "-fopenmp", *sanitize,
                     f"-I{ROOT / 'csrc'}", f"-I{ROOT / 'csrc' / 'include'}", *flags, "-c", src,
                     "-o", obj])
        return obj

    with ThreadPoolExecutor(2) as pool:
        objs = list(pool.map(compile_one, sources))
    exe = work / "model_file_fuzz"
    run_checked([cxx, "-fopenmp", *SANITIZE, *objs, "-o", exe])
    return exe


def test_cpp_reader_survives_mutations_under_sanitizers(fuzzer, seeds, tmp_path):
    seconds = _budget(40)
    r = subprocess.run([fuzzer, "--seed", str(_seed()), "--seconds", str(seconds),
                        "--crash-dir", tmp_path, *map(str, seeds.values())],
                       capture_output=True, text=True, timeout=seconds + 300,
                       env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"})
    print(r.stdout)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr[-6000:]}"
    m = re.search(r"inputs: (\d+), accepted: (\d+)", r.stdout)
    assert m and "crashes: 0" in r.stdout, r.stdout
    inputs, accepted = int(m.group(1)), int(m.group(2))
    assert inputs >= 500 and 0 < accepted < inputs, r.stdout  # it ran, and went deep


# ---- the Python reader ---------------------------------------------------------------------
_NUMBERS = [b"0", b"1", b"2", b"7", b"8", b"16", b"48", b"512", b"513", b"1048576", b"1048577",
            b"4294967296", b"1099511627777", b"9223372036854775808", b"18446744073709551616",
            b"-1", b"-0", b"1.5", b"1e3", b"1e400", b"123456789012345678901234567890"]
_DTYPES = [b"F64", b"I32", b"I64", b"U8", b"F16", b"", b"f32"]
_NAMES = [b"resnet12", b"resnet18", b"resnet", b"deepid", b"tfe", b"vgg", b""]
_TOKENS = [b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"\\u", b"\\ud800", b"\\u0000",
           b"null", b"NaN", b"-", b".", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x01", b"[" * 80]


def _mutate(d, rng, seeds):
    """One mutation of file bytes ``d`` (bytearray), the kinds of model_file_fuzz.cpp."""
    n = struct.unpack("<Q", d[:8])[0] if len(d) >= 8 else None
    if n is not None and 0 < n <= len(d) - 8 and rng.random() < 0.7:
        header = bytes(d[8:8 + n])
        kind = rng.randrange(8)
        if kind == 0:
            d[:8] = struct.pack("<Q", rng.choice([0, 1, 2, n - 1, n + 1, len(d), 100 << 20,
                                                 (100 << 20) + 1, 1 << 63, 2**64 - 1]))
            return d
        spans = [m.span() for m in re.finditer(rb"[0-9]+", header)]
        if kind in (1, 6) and len(spans) < 2:
            return d
        if kind == 1:
            a, b = rng.choice(spans)
            new = rng.choice(_NUMBERS) if rng.random() < 0.7 else \
                str(max(0, int(header[a:b][:18]) + rng.randrange(-4, 5))).encode()
        elif kind == 2:
            spans = [m.span() for m in re.finditer(rb'"F32"', header)]
            if not spans:
                return d
            a, b = rng.choice(spans)
            a, b, new = a + 1, b - 1, rng.choice(_DTYPES)
        elif kind == 3:
            spans = [m.span(1) for m in re.finditer(rb'\\"((?:resnet|deepid|tfe)\w*)\\"', header)]
            if not spans:
                return d
            (a, b), new = rng.choice(spans), rng.choice(_NAMES)
        elif kind == 4:
            a = b = rng.randrange(n + 1)
            new = rng.choice(_TOKENS)
        elif kind == 5:
            a = rng.randrange(n)
            b = min(n, a + 1 + rng.randrange(64))
            new = b"" if rng.random() < 0.5 else header[a:b] * 2
        elif kind == 6:  # two offsets or shapes swapped
            (a, b), (c, e) = sorted(rng.sample(spans, 2))
            header = header[:a] + header[c:e] + header[b:c] + header[a:b] + header[e:]
            a, b, new = 0, n, header
        else:  # a weight set to something hostile
            if len(d) - 8 - n >= 4:
                at = 8 + n + 4 * rng.randrange((len(d) - 8 - n) // 4)
                d[at:at + 4] = np.float32(rng.choice([np.nan, np.inf, -np.inf, 3e38, 0.0, 1e-45]
                                                     )).tobytes()
            return d
        header = header[:a] + new + header[b:]
        if rng.random() < 0.9:
            d[:8] = struct.pack("<Q", len(header))
        d[8:8 + n] = header
        return d
    kind = rng.randrange(3)
    if kind == 0:
        del d[rng.randrange(len(d) + 1):]
    elif kind == 1:
        other = rng.choice(seeds)
        at = rng.randrange(len(other))
        d += other[at:at + 1 + rng.randrange(64)]
    elif d:
        span = 8 + n if n is not None and n <= len(d) - 8 and rng.random() < 0.75 else len(d)
        for _ in range(rng.randrange(1, 5)):
            d[rng.randrange(span)] = rng.randrange(256)
    return d


def _mask_numbers(message):
    """Self-test messages quote differences computed two ways; compare the rest."""
    return re.sub(r"difference\| \S+", "difference| #", message)


def fuzz_python_reader(seeds, seconds, seed, c_api=None):
    """Mutated inputs through LoadedModel (and the C API when given); returns counts."""
    rng = random.Random(seed)
    blobs = [p.read_bytes() for p in seeds]
    counts = {"inputs": 0, "accepted": 0, "refused": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        d = bytearray(rng.choice(blobs))
        for _ in range(rng.randrange(1, 5)):
            d = _mutate(d, rng, blobs)
        data = bytes(d)
        counts["inputs"] += 1
        try:
            model = LoadedModel("<memory>", data=data)
            verdict = ("TFE_OK", "")
            assert model.selftest() <= model_reader.SELFTEST_TOLERANCE * max(
                1.0, float(np.abs(model.selftest_logits).max()))
            counts["accepted"] += 1
        except model_reader.ModelFileError as e:
            message = str(e)
            assert message.startswith("<memory>: ") and "\n" not in message, message
            verdict = (e.status, message)
            counts["refused"] += 1
        if c_api is not None:
            status, message, handle = c_api.load_memory(data)
            if handle is not None:
                c_api.free(handle)
            if _selftest_boundary(verdict[0], status):
                counts["selftest_boundary"] = counts.get("selftest_boundary", 0) + 1
                continue
            assert status == STATUS[verdict[0]], (verdict, message, data[:4096])
            assert _mask_numbers(message) == _mask_numbers(verdict[1]), (verdict, message)
    return counts


def _selftest_boundary(python_status, c_status):
    """One reader passes the self-test and the other fails it. Both are clean verdicts: a
    mutated, ill-conditioned model (e.g. a running variance near 0) computes differently in
    float32 with batch norm folded (C) and unfolded (Python), so near the tolerance the two
    may judge differently. Every structural check must still agree exactly."""
    pair = {python_status, next(k for k, v in STATUS.items() if v == c_status)}
    return pair == {"TFE_OK", "TFE_ERR_SELFTEST"}


def test_python_reader_refuses_mutations_cleanly(seeds, request):
    try:
        c_api = request.getfixturevalue("c_api")
    except pytest.skip.Exception:
        c_api = None  # no C++ library here: the Python reader alone
    counts = fuzz_python_reader(list(seeds.values()), _budget(25), _seed(), c_api)
    print(counts)
    assert counts["inputs"] >= 200 and counts["accepted"] > 0, counts
