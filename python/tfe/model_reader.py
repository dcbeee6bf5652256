"""Reading tfe model files as untrusted input: the Python twin of the C++ library's reader.

``read_container`` mirrors csrc/engine/model_file.cpp (the safetensors container) and
``validate_model`` the load path of csrc/engine/graph.cpp (preprocessing contract,
architecture, every tensor's dtype, shape and finite values, no missing or extra tensors):
the same checks in the same order with the same messages, so both readers refuse the same
files with the same one-line ``"<file>: <problem>"``. Everything is checked before a model
is built, so a hostile file cannot make the reader allocate more than the file holds.
tests/test_model_file_errors.py runs both readers over every kind of malformed file and
reads the limits below out of the C++ sources to keep them equal.
"""

import os

import numpy as np

from .errors import InputError

from .strict_json import JsonError, parse as parse_json, printable

FORMAT = "tfe-1"
# The limits, as in the C++ library (name there in the comment).
MAX_HEADER_BYTES = 100 << 20  # ModelFile::kMaxHeaderBytes
MAX_FILE_BYTES = 4 << 30      # ModelFile::kMaxFileBytes
MAX_RANK = 8                  # ModelFile::kMaxRank
MAX_NUMEL = 1 << 40           # ModelFile::kMaxNumel
MAX_INPUT = 512               # kMaxInput (graph.cpp)
MAX_CLASSES = 1 << 20         # kMaxClasses
MAX_STAGE_BLOCKS = 64         # kMaxStageBlocks
SELFTEST_TOLERANCE = 1.0 / 1024  # kSelftestTolerance: relative to max(1, max |stored logit|)
MIN_STD, MAX_STD = 1.0 / 256, 256.0  # kMinStd, kMaxStd: preprocess.std of 8-bit pixels

_ITEMSIZE = {"F32": 4, "F64": 8, "I64": 8, "I32": 4, "U8": 1}
_NUMPY = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1"}
_RESNETS = ("resnet12", "resnet18", "resnet")
_RESNET_WIDTHS = (16, 32, 64)
_DEEPID_FEATURE = 160


class ModelFileError(InputError):
    """A refused model file. The message is one line, ``"<file>: <problem>"``, the same as the
    C++ library's tfe_last_error() for that file; ``status`` is the C API's status name."""

    def __init__(self, message, status="TFE_ERR_FORMAT"):
        super().__init__(message)
        self.status = status


def _is_int(v):
    return type(v) is int


def shape_string(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


class Entry:
    __slots__ = ("dtype", "shape", "begin", "end")

    def __init__(self, dtype, shape, begin, end):
        self.dtype, self.shape, self.begin, self.end = dtype, shape, begin, end


class Container:
    """A checked safetensors file: ``tensors`` (name -> Entry, file order), ``metadata``
    (str -> str) and the data section."""

    def __init__(self, name, tensors, metadata, data):
        self.name, self.tensors, self.metadata, self._data = name, tensors, metadata, data

    def array(self, key):
        """A native-byte-order copy of tensor ``key`` with its stored dtype."""
        e = self.tensors[key]
        a = np.frombuffer(self._data[e.begin:e.end], dtype=np.dtype(_NUMPY[e.dtype]))
        return a.astype(a.dtype.newbyteorder("="), copy=True).reshape(e.shape)

    def decoded_metadata(self):
        """Metadata values that hold JSON decoded (strictly), others kept as strings."""
        out = {}
        for k, v in self.metadata.items():
            try:
                out[k] = parse_json(v.encode("utf-8", "surrogatepass"), k)
            except JsonError:
                out[k] = v
        return out


def read_file(path):
    """The bytes of ``path`` (ModelFile::read); ModelFileError (TFE_ERR_IO) when unreadable."""
    name = os.fsdecode(path)
    try:
        f = open(path, "rb")
    except IsADirectoryError as e:  # C's fopen opens a folder; its first read fails
        raise ModelFileError(f"{name}: cannot read ({e.strerror})", "TFE_ERR_IO") from None
    except OSError as e:
        raise ModelFileError(f"{name}: cannot open ({e.strerror})", "TFE_ERR_IO") from None
    with f:
        try:
            data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise ModelFileError(f"{name}: cannot read ({e.strerror})", "TFE_ERR_IO") from None
    if len(data) > MAX_FILE_BYTES:
        raise ModelFileError(f"{name}: file larger than 4 GiB, not a tfe model file")
    return data


def read_container(path):
    return parse_container(read_file(path), os.fsdecode(path))


def parse_container(data, name):
    """Checks the container (ModelFile::parse) and returns a Container."""
    def bad(why):
        raise ModelFileError(f"{name}: {why}")

    size = len(data)
    if size < 8:
        bad(f"truncated ({size} bytes, no 8-byte header length)")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES:
        bad(f"header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    if n > size - 8:
        bad(f"truncated: header length {n} exceeds the file ({size} bytes)")
    if n < 2:
        bad(f"header length {n} is too small for a JSON object")
    try:
        header = parse_json(memoryview(data)[8:8 + n], f"{name}: header")
    except JsonError as e:
        raise ModelFileError(str(e)) from None
    if not isinstance(header, dict):
        bad("header is not a JSON object")
    data_size = size - 8 - n

    tensors, metadata, have_meta = {}, {}, False
    for key, val in header.items():
        if key == "__metadata__":
            have_meta = True
            if val is None:
                continue
            if not isinstance(val, dict):
                bad("__metadata__ is not an object")
            for mk, mv in val.items():
                if not isinstance(mv, str):
                    bad(f'__metadata__["{printable(mk)}"] is not a string')
                metadata[mk] = mv
            continue
        t = f"tensor '{printable(key)}'"
        if not isinstance(val, dict):
            bad(f"{t}: entry is not an object")
        if len(val) != 3 or not all(k in val for k in ("dtype", "shape", "data_offsets")):
            bad(f"{t}: entry must have exactly dtype, shape and data_offsets")
        dt, sh, off = val["dtype"], val["shape"], val["data_offsets"]
        if not isinstance(dt, str):
            bad(f"{t}: dtype is not a string")
        if dt not in _ITEMSIZE:
            bad(f'{t}: unsupported dtype "{printable(dt)}"')
        if not isinstance(sh, list):
            bad(f"{t}: shape is not an array")
        if len(sh) > MAX_RANK:
            bad(f"{t}: rank {len(sh)} exceeds {MAX_RANK}")
        numel = 1
        for d in sh:
            if not _is_int(d) or d < 0:
                bad(f"{t}: a shape entry is not a non-negative integer")
            if d > MAX_NUMEL or numel * d > MAX_NUMEL:
                bad(f"{t}: shape {d}... is too large")
            numel *= d
        if not isinstance(off, list) or len(off) != 2:
            bad(f"{t}: data_offsets is not [begin, end]")
        for k in (0, 1):
            if not _is_int(off[k]) or off[k] < 0:
                bad(f"{t}: data_offsets[{k}] is not a non-negative integer")
        begin, end = off
        if begin > end or end > data_size:
            bad(f"{t}: offsets [{begin}, {end}] outside the data section ({data_size} bytes)")
        nbytes = numel * _ITEMSIZE[dt]
        if end - begin != nbytes:
            bad(f"{t}: {end - begin} bytes do not hold {dt} shape {shape_string(sh)} "
                f"({nbytes} bytes)")
        tensors[key] = Entry(dt, tuple(sh), begin, end)

    # The ranges must tile the data section (no overlap, no gap, nothing after them).
    covered, previous = 0, None
    for begin, end, key in sorted((e.begin, e.end, k) for k, e in tensors.items()):
        t, where = f"tensor '{printable(key)}'", f"offsets [{begin}, {end}]"
        if begin < covered:
            bad(f"{t}: {where} overlap tensor '{printable(previous)}'")
        if begin > covered:
            bad(f"{t}: {where} leave a gap (bytes {covered} to {begin} of the data section "
                "belong to no tensor)")
        covered, previous = end, key
    if covered != data_size:
        bad(f"the data section has {data_size - covered} bytes after the last tensor")

    fmt = metadata.get("format")
    if not have_meta or fmt is None:
        bad('not a tfe model file (no "format" in __metadata__)')
    if fmt != FORMAT:
        shown = printable(fmt)
        if fmt.startswith("tfe-"):
            raise ModelFileError(f'{name}: model file format "{shown}" is not supported by this '
                                 f'library (it reads "{FORMAT}")', "TFE_ERR_VERSION")
        bad(f'not a tfe model file (format "{shown}", expected "{FORMAT}")')
    return Container(name, tensors, metadata, memoryview(data)[8 + n:])


# ---- the model (graph.cpp: Model::load) ------------------------------------------------------
class _Reader:
    """Reads float32 tensors by name with their exact expected shape and remembers which ones
    were read, for the check that nothing else is in the file."""

    def __init__(self, c):
        self.c, self.name, self.used, self.arrays = c, c.name, set(), {}

    def fail(self, why, status="TFE_ERR_FORMAT"):
        raise ModelFileError(f"{self.name}: {why}", status)

    def bad_arch(self, why):
        self.fail(f"architecture: {why}")

    def get(self, key, shape):
        self.used.add(key)
        e = self.c.tensors.get(key)
        if e is None:
            self.fail(f"missing tensor '{printable(key)}'")
        if e.dtype != "F32":
            self.fail(f"tensor '{key}' has dtype {e.dtype}, expected F32")
        if e.shape != tuple(shape):
            self.fail(f"tensor '{key}' has shape {shape_string(e.shape)}, expected "
                      f"{shape_string(shape)}")
        a = self.c.array(key)
        finite = np.isfinite(a).ravel()
        if not finite.all():
            i = int(np.argmin(finite))
            kind = "NaN" if np.isnan(a.ravel()[i]) else "infinity"
            self.fail(f"tensor '{key}' holds a non-finite value ({kind}) at index {i}")
        self.arrays[key] = a
        return a

    def check_all_used(self):
        for k in sorted(self.c.tensors):
            if k not in self.used:
                self.fail(f"unexpected tensor '{printable(k)}' (shape "
                          f"{shape_string(self.c.tensors[k].shape)}) for this architecture")

    def int_field(self, obj, key, lo, hi, fallback=None):
        if key not in obj:
            if fallback is not None:
                return fallback
            self.bad_arch(f'missing "{key}"')
        v = obj[key]
        if not _is_int(v) or v < lo or v > hi:
            self.bad_arch(f'"{key}" is not an integer in {lo}..{hi}')
        return v

    def name_field(self, arch):
        if not isinstance(arch, dict):
            self.bad_arch("not a JSON object")
        if not isinstance(arch.get("name"), str):
            self.bad_arch('missing "name"')
        return arch["name"]

    def check_gray_input(self, arch):
        c = self.int_field(arch, "in_channels", 1, 1 << 16, fallback=1)
        if c != 1:
            self.fail(f"architecture has {c} input channels; this library runs grayscale (1) "
                      "models", "TFE_ERR_UNSUPPORTED")

    def bn(self, p, c):
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            self.get(f"{p}.{leaf}", (c,))

    def deepid(self, arch, p, size):
        self.check_gray_input(arch)
        ids = self.int_field(arch, "num_identities", 1, MAX_CLASSES)
        if "dropout" in arch:
            d = arch["dropout"]
            if type(d) not in (int, float) or not 0 <= d < 1:
                self.bad_arch('"dropout" is not a number in [0, 1)')
        widths, ks = (1, 20, 40, 60, 80), (4, 3, 3, 2)
        for i in range(4):
            self.get(f"{p}conv{i + 1}.weight", (widths[i + 1], widths[i], ks[i], ks[i]))
            self.get(f"{p}conv{i + 1}.bias", (widths[i + 1],))
        h = [size]
        for i in range(4):  # valid convolutions, then 2x2 max-pools after the first three
            if h[i] < ks[i]:
                self.fail(f"input size {size} is too small for DeepID", "TFE_ERR_UNSUPPORTED")
            co = h[i] - ks[i] + 1
            if i < 3 and co < 2:
                self.fail(f"input size {size} is too small for DeepID", "TFE_ERR_UNSUPPORTED")
            h.append((co - 2) // 2 + 1 if i < 3 else co)
        concat = 60 * h[3] * h[3] + 80 * h[4] * h[4]
        self.get(f"{p}fc.weight", (_DEEPID_FEATURE, concat))
        self.get(f"{p}fc.bias", (_DEEPID_FEATURE,))
        self.get(f"{p}classifier.weight", (ids, _DEEPID_FEATURE))
        self.get(f"{p}classifier.bias", (ids,))
        return ids

    def resnet(self, arch, p):
        """Returns (num_classes, feature width)."""
        self.check_gray_input(arch)
        classes = self.int_field(arch, "num_classes", 1, MAX_CLASSES)
        blocks = arch.get("blocks")
        if not isinstance(blocks, list) or not 1 <= len(blocks) <= 3:
            self.bad_arch('"blocks" is not a list of 1 to 3 stage lengths')
        self.get(f"{p}stem_conv.weight", (_RESNET_WIDTHS[0], 1, 3, 3))
        self.bn(f"{p}stem_bn", _RESNET_WIDTHS[0])
        c, n = _RESNET_WIDTHS[0], 0
        for stage, count in enumerate(blocks):
            if not _is_int(count) or not 0 <= count <= MAX_STAGE_BLOCKS:
                self.bad_arch(f"a stage length is not an integer in 0..{MAX_STAGE_BLOCKS}")
            width = _RESNET_WIDTHS[stage]
            for i in range(count):
                q = f"{p}blocks.{n}."
                self.get(q + "conv1.weight", (width, c, 3, 3))
                self.bn(q + "bn1", width)
                self.get(q + "conv2.weight", (width, width, 3, 3))
                self.bn(q + "bn2", width)
                if stage > 0 and i == 0:
                    self.get(q + "proj.weight", (width, c, 1, 1))
                    self.bn(q + "proj_bn", width)
                c, n = width, n + 1
        self.get(f"{p}fc.weight", (classes, c))
        self.get(f"{p}fc.bias", (classes,))
        return classes, c

    def network(self, arch, size):
        """Checks the architecture and its tensors; returns (name, num_classes)."""
        name = self.name_field(arch)
        if name == "deepid":
            return name, self.deepid(arch, "", size)
        if name in _RESNETS:
            return name, self.resnet(arch, "")[0]
        if name != "tfe":
            self.fail(f'unknown architecture "{printable(name)}"', "TFE_ERR_UNSUPPORTED")
        if "identity" not in arch or "emotion" not in arch:
            self.bad_arch('tfe needs "identity" and "emotion"')
        ia, ea = arch["identity"], arch["emotion"]
        iname, ename = self.name_field(ia), self.name_field(ea)
        if iname != "deepid":
            self.fail(f'tfe identity network "{printable(iname)}" (expected deepid)',
                      "TFE_ERR_UNSUPPORTED")
        if ename not in _RESNETS:
            self.fail(f'tfe emotion network "{printable(ename)}" (expected a resnet)',
                      "TFE_ERR_UNSUPPORTED")
        self.deepid(ia, "identity.", size)
        _, feature = self.resnet(ea, "emotion.")
        classes = self.int_field(arch, "num_classes", 1, MAX_CLASSES)
        d = _DEEPID_FEATURE + feature
        for leaf in ("bn_weight", "bn_bias", "running_mean", "running_var"):
            self.get(f"head.{leaf}", (d,))
        self.get("head.weight", (classes, d))
        self.get("head.bias", (classes,))
        return name, classes

    def meta_json(self, key):
        if key not in self.c.metadata:
            self.fail(f'missing metadata "{key}"')
        text = self.c.metadata[key].encode("utf-8", "surrogatepass")
        try:
            return parse_json(text, f"{self.name}: metadata {key}")
        except JsonError as e:
            raise ModelFileError(str(e)) from None


class ValidModel:
    """What validate_model found: architecture (dict), input size, labels, the float32
    tensors by name (weights, preprocess.*, selftest.*) and the self-test tolerance."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def validate_model(c):
    """Checks a Container as a model (graph.cpp Model::load up to, not including, the
    self-test); returns a ValidModel. Nothing the size of a claimed dimension is allocated
    before the file is known to hold it."""
    r = _Reader(c)
    pre = r.meta_json("preprocessing")
    if not isinstance(pre, dict):
        r.fail("preprocessing is not a JSON object")
    isz = pre.get("input_size")
    if not (isinstance(isz, list) and len(isz) == 2 and all(_is_int(v) and v >= 1 for v in isz)):
        r.fail("preprocessing.input_size is not [height, width]")
    ih, iw = isz
    if ih != iw or ih > MAX_INPUT:
        r.fail(f"input size {ih}x{iw} (this library runs square inputs up to {MAX_INPUT})",
               "TFE_ERR_UNSUPPORTED")
    if "grayscale" in pre and pre["grayscale"] is not True:
        r.fail("preprocessing.grayscale is not true", "TFE_ERR_UNSUPPORTED")
    labels = pre.get("labels")
    if not isinstance(labels, list):
        r.fail("preprocessing.labels is not a list")
    if not all(isinstance(v, str) for v in labels):
        r.fail("preprocessing.labels holds a non-string")
    s = ih
    mean = r.get("preprocess.mean", (s, s)).ravel()
    std = r.get("preprocess.std", (s, s)).ravel()
    bad_std = ~((std >= MIN_STD) & (std <= MAX_STD))
    bad_mean = ~((mean >= 0) & (mean <= 255))
    if (bad_std | bad_mean).any():  # the first bad pixel; its std is checked first
        if bad_std[int(np.argmax(bad_std | bad_mean))]:
            r.fail(f"preprocess.std must lie in [{MIN_STD:.3g}, {MAX_STD:.3g}] (it scales 8-bit "
                   "pixels)")
        r.fail("preprocess.mean must lie in [0, 255] (a mean of 8-bit pixels)")
    arch = r.meta_json("architecture")
    name, classes = r.network(arch, s)
    if classes != len(labels):
        r.fail(f"{len(labels)} labels for a network with {classes} outputs")
    r.get("selftest.input", (1, 1, s, s))
    logits = r.get("selftest.logits", (1, classes))
    scale = max(1.0, float(np.abs(logits).max()))
    tolerance = np.float32(SELFTEST_TOLERANCE * scale)
    r.check_all_used()
    return ValidModel(architecture=arch, input_size=s, labels=list(labels), tensors=r.arrays,
                      selftest_tolerance=tolerance)


def nonfinite_logit(image):
    """The message of a prediction that overflows (c_api.cpp nonfinite_logit)."""
    return f"image {image}: the model computes a non-finite logit (its weights overflow float32)"


def selftest_failure(diff, tolerance):
    """The message of a failed self-test (graph.cpp selftest_failure)."""
    return (f"self-test failed: max |logit difference| {float(diff):.3g} exceeds the tolerance "
            f"{float(tolerance):.3g} (the weights do not compute the file's stored logits)")
