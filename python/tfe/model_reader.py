"""Reading tfe model files as untrusted input: the Python twin of the C++ library's reader.

``read_container`` mirrors csrc/infer/model_file.cpp (the safetensors container) and
``validate_model`` the load path of csrc/infer/graph.cpp and layers.cpp (preprocessing
contract, architecture, the layer list (or the one the architecture describes), every
tensor's dtype, shape and finite values, no missing or extra tensors): the same checks in the same order with the same messages, so both readers refuse the same
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
FORMATS = ("tfe-1", "tfe-2")  # "tfe-2": see tfe.modelfile.format_of
# The limits, as in the C++ library (name there in the comment).
MAX_HEADER_BYTES = 100 << 20  # ModelFile::kMaxHeaderBytes
MAX_FILE_BYTES = 4 << 30      # ModelFile::kMaxFileBytes
MAX_RANK = 8                  # ModelFile::kMaxRank
MAX_NUMEL = 1 << 40           # ModelFile::kMaxNumel
MAX_INPUT = 512               # kMaxInput (graph.cpp)
MAX_CLASSES = 1 << 20         # kMaxClasses
MAX_STAGE_BLOCKS = 64         # kMaxStageBlocks
MAX_LAYERS = 4096             # kMaxLayers (layers.h)
MAX_CHANNELS = 1 << 16        # kMaxChannels
MAX_KERNEL = 16               # kMaxKernel
MAX_STRIDE = 16               # kMaxStride
MAX_PADDING = 16              # kMaxPadding
MAX_FEATURES = 1 << 30        # kMaxFeatures (graph.cpp)
DEFAULT_EPS = 1e-5            # kDefaultEps: the BN eps of every file without a layer list
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
    if fmt not in FORMATS:
        shown = printable(fmt)
        if fmt.startswith("tfe-"):
            raise ModelFileError(f'{name}: model file format "{shown}" is not supported by this '
                                 'library (it reads "tfe-1" and "tfe-2")', "TFE_ERR_VERSION")
        bad(f'not a tfe model file (format "{shown}", expected "tfe-1" or "tfe-2")')
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

    def bn(self, p, c):
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            self.get(f"{p}.{leaf}", (c,))

    def check_gray_input(self, arch):
        c = self.int_field(arch, "in_channels", 1, 1 << 16, fallback=1)
        if c != 1:
            self.fail(f"architecture has {c} input channels; this library runs grayscale (1) "
                      "models", "TFE_ERR_UNSUPPORTED")

    # ---- the architecture JSON of a file without a layer list (layers.cpp) ----
    def layers_from_architecture(self, arch, size):
        """The layer list ``arch`` describes for size x size input (tfe.layers.describe of
        the model it builds, with BN eps DEFAULT_EPS), after checking ``arch``."""
        name, out = self.name_field(arch), _ListWriter()
        if name == "deepid":
            self._deepid_layers(out, arch, "", size, -1)
        elif name in _RESNETS:
            self._resnet_layers(out, arch, "", -1)
        elif name == "tfe":
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
            zi = self._deepid_layers(out, ia, "identity.", size, -1)
            ze, _, feature = self._resnet_layers(out, ea, "emotion.", -1)
            classes = self.int_field(arch, "num_classes", 1, MAX_CLASSES)
            out.add("tfe_head", [zi, ze], name="head", identity_dim=_DEEPID_FEATURE,
                    emotion_dim=feature, num_classes=classes, eps=DEFAULT_EPS)
        else:
            self.fail(f'unknown architecture "{printable(name)}"', "TFE_ERR_UNSUPPORTED")
        return out.layers

    def _deepid_layers(self, out, arch, p, size, input):
        """Returns the index of the 160-d feature (the ReLU after fc)."""
        self.check_gray_input(arch)
        ids = self.int_field(arch, "num_identities", 1, MAX_CLASSES)
        if "dropout" in arch:
            d = arch["dropout"]
            if type(d) not in (int, float) or not 0 <= d < 1:
                self.bad_arch('"dropout" is not a number in [0, 1)')
        widths, ks, h = (1, 20, 40, 60, 80), (4, 3, 3, 2), size
        for i in range(4):
            co = h - ks[i] + 1
            if co < (2 if i < 3 else 1):
                self.fail(f"input size {size} is too small for DeepID", "TFE_ERR_UNSUPPORTED")
            out.add("conv2d", input if i == 0 else None, name=f"{p}conv{i + 1}",
                    in_channels=widths[i], out_channels=widths[i + 1], kernel=ks[i], stride=1,
                    padding=0, bias=True)
            conv4 = out.add("relu")
            if i < 3:
                pool3 = out.add("maxpool2d", kernel=2, stride=2)
            h = co // 2 if i < 3 else co
        cat = out.add("concat", [out.add("flatten", pool3), out.add("flatten", conv4)])
        concat = widths[3] * (h + 1) ** 2 + widths[4] * h * h  # h: conv4's side, pool3's + 1
        out.add("linear", cat, name=f"{p}fc", in_features=concat, out_features=_DEEPID_FEATURE,
                bias=True)
        feature = out.add("relu")
        out.add("dropout", p=float(arch.get("dropout", 0.4)))
        out.add("linear", name=f"{p}classifier", in_features=_DEEPID_FEATURE, out_features=ids,
                bias=True)
        return feature

    def _resnet_layers(self, out, arch, p, input):
        """Returns (index of the global average pool, num_classes, feature width)."""
        self.check_gray_input(arch)
        classes = self.int_field(arch, "num_classes", 1, MAX_CLASSES)
        blocks = arch.get("blocks")
        if not isinstance(blocks, list) or not 1 <= len(blocks) <= 3:
            self.bad_arch('"blocks" is not a list of 1 to 3 stage lengths')
        for count in blocks:
            if not _is_int(count) or not 0 <= count <= MAX_STAGE_BLOCKS:
                self.bad_arch(f"a stage length is not an integer in 0..{MAX_STAGE_BLOCKS}")
        c = _RESNET_WIDTHS[0]
        out.add("conv2d", input, name=f"{p}stem_conv", in_channels=1, out_channels=c, kernel=3,
                stride=1, padding=1, bias=False)
        out.add("batchnorm", name=f"{p}stem_bn", channels=c, eps=DEFAULT_EPS)
        out.add("relu")
        n = 0
        for stage, count in enumerate(blocks):
            for i in range(count):
                projection = stage > 0 and i == 0
                out.add("residual_block", name=f"{p}blocks.{n}", in_channels=c,
                        out_channels=_RESNET_WIDTHS[stage], kernel=3, stride=2 if projection else 1,
                        padding=1, shortcut="projection" if projection else "identity",
                        eps=DEFAULT_EPS)
                c, n = _RESNET_WIDTHS[stage], n + 1
        pool = out.add("global_avg_pool")
        out.add("linear", name=f"{p}fc", in_features=c, out_features=classes, bias=True)
        return pool, classes, c

    # ---- the layer list (graph.cpp: load_network) ----
    def network(self, layers, size):
        """Checks the layer list and reads its tensors; returns num_classes."""
        cur = _Cursor(_Layers(layers, self.name))
        if cur.L.kind(len(cur.L) - 1) == "tfe_head":
            zi, feature_i, _ = self.deepid(cur, -1, size)
            ze, feature_e, _ = self.resnet(cur, -1, size)
            classes = self.head(cur.L, cur.next("tfe_head", zi, ze), feature_i, feature_e)
        elif len(cur.L) > 1 and cur.L.kind(1) == "batchnorm":
            classes = self.resnet(cur, -1, size)[2]
        else:
            classes = self.deepid(cur, -1, size)[2]
        if cur.pos < len(cur.L):
            cur.L.fail(cur.pos, f"follows the network's output{_RUNS}", "TFE_ERR_UNSUPPORTED")
        return classes

    @staticmethod
    def convolution_fields(L, i, c_in):
        """(in_channels, out_channels, kernel, stride, padding) of a conv2d or residual_block
        layer reading c_in channels, checked in the C reader's order."""
        return (L.input_width(i, "in_channels", c_in, layer_ref(L.input(i))),
                L.integer(i, "out_channels", 1, MAX_CHANNELS),
                L.integer(i, "kernel", 1, MAX_KERNEL),
                L.integer(i, "stride", 1, MAX_STRIDE),
                L.integer(i, "padding", 0, MAX_PADDING))

    def conv(self, L, i, c_in):
        """(out_channels, kernel, stride, padding, bias) of a conv2d layer reading c_in."""
        c, k_out, k, s, pd = self.convolution_fields(L, i, c_in)
        bias = L.flag(i, "bias")
        p = L.name(i)
        self.get(f"{p}.weight", (k_out, c, k, k))
        if bias:
            self.get(f"{p}.bias", (k_out,))
        return k_out, k, s, pd, bias

    def batchnorm(self, L, i, c):
        L.input_width(i, "channels", c, layer_ref(L.input(i)))
        L.eps(i)
        self.bn(L.name(i), c)

    def linear(self, L, i, n_in):
        """out_features of a linear layer reading n_in features."""
        n = L.input_width(i, "in_features", n_in, layer_ref(L.input(i)))
        o = L.integer(i, "out_features", 1, MAX_CLASSES)
        L.require(i, L.flag(i, "bias"), "linear layers with a bias")
        p = L.name(i)
        self.get(f"{p}.weight", (o, n))
        self.get(f"{p}.bias", (o,))
        return o

    def deepid(self, cur, x, size):
        """Returns (index of the feature's relu, feature width, identities)."""
        L, h, ch = cur.L, size, 1
        for i in range(4):
            at = cur.next("conv2d", x)
            ch, k, s, pd, bias = self.conv(L, at, ch)
            L.require(at, s == 1 and pd == 0 and bias,
                      "DeepID convolutions of stride 1 without padding, with a bias,")
            if h < k:
                L.fail(at, f"input size {size} is too small", "TFE_ERR_UNSUPPORTED")
            co = h - k + 1
            x = cur.next("relu", at)
            if i == 3:
                relu4, side4 = x, co
                break
            pool = cur.next("maxpool2d", x)
            L.require(pool, L.integer(pool, "kernel", 1, MAX_KERNEL) == 2
                      and L.integer(pool, "stride", 1, MAX_STRIDE) == 2, "2x2 stride-2 max pooling")
            if co < 2:
                L.fail(pool, f"input size {size} is too small", "TFE_ERR_UNSUPPORTED")
            h = co // 2
            x = pool3 = pool
            side3, ch3 = h, ch
        f3, f4 = cur.next("flatten", pool3), cur.next("flatten", relu4)
        cat = cur.next("concat", f3, f4)
        fc_at = cur.next("linear", cat)
        feature = self.linear(L, fc_at, ch3 * side3 * side3 + ch * side4 * side4)
        feat = cur.next("relu", fc_at)
        drop = cur.next("dropout", feat)
        L.dropout_rate(drop)  # unused in eval mode, but must make sense
        return feat, feature, self.linear(L, cur.next("linear", drop), feature)

    def resnet(self, cur, x, size):
        """Returns (index of the global average pool, feature width, num_classes)."""
        L = cur.L
        at = cur.next("conv2d", x)
        c, k, s, pd, bias = self.conv(L, at, 1)
        L.require(at, k == 3 and s == 1 and pd == 1 and not bias,
                  "ResNet stems of a 3x3 stride-1 padding-1 convolution without bias")
        bn = cur.next("batchnorm", at)
        self.batchnorm(L, bn, c)
        x = cur.next("relu", bn)
        while cur.at("residual_block"):
            x = cur.next("residual_block", x)
            c = self.block(L, x, c)
        pool = cur.next("global_avg_pool", x)
        return pool, c, self.linear(L, cur.next("linear", pool), c)

    def block(self, L, i, c):
        """A residual_block reading c channels; returns its width."""
        cin, k_out, k, s, pd = self.convolution_fields(L, i, c)
        shortcut = L.text(i, "shortcut")
        L.eps(i)
        projection = shortcut == "projection"
        L.require(i, k == 3 and pd == 1 and ((shortcut == "identity" and s == 1 and k_out == cin)
                                              or (projection and s == 2)),
                  'residual blocks of 3x3 padding-1 convolutions with an "identity" shortcut '
                  '(stride 1, one width) or a "projection" shortcut (stride 2)')
        q = L.name(i) + "."
        self.get(q + "conv1.weight", (k_out, cin, 3, 3))
        self.bn(q + "bn1", k_out)
        self.get(q + "conv2.weight", (k_out, k_out, 3, 3))
        self.bn(q + "bn2", k_out)
        if projection:
            self.get(q + "proj.weight", (k_out, cin, 1, 1))
            self.bn(q + "proj_bn", k_out)
        return k_out

    def head(self, L, i, feature_i, feature_e):
        zi, ze = L.inputs(i)
        L.input_width(i, "identity_dim", feature_i, layer_ref(zi))
        L.input_width(i, "emotion_dim", feature_e, layer_ref(ze))
        classes = L.integer(i, "num_classes", 1, MAX_CLASSES)
        L.eps(i)
        p, d = L.name(i), feature_i + feature_e
        for leaf in ("bn_weight", "bn_bias", "running_mean", "running_var"):
            self.get(f"{p}.{leaf}", (d,))
        self.get(f"{p}.weight", (classes, d))
        self.get(f"{p}.bias", (classes,))
        return classes

    def meta_json(self, key):
        if key not in self.c.metadata:
            self.fail(f'missing metadata "{key}"')
        text = self.c.metadata[key].encode("utf-8", "surrogatepass")
        try:
            return parse_json(text, f"{self.name}: metadata {key}")
        except JsonError as e:
            raise ModelFileError(str(e)) from None


# ---- layer lists (layers.cpp) ---------------------------------------------------------------
_KINDS = ("conv2d", "batchnorm", "relu", "maxpool2d", "residual_block", "dropout", "linear",
          "flatten", "global_avg_pool", "concat", "tfe_head")
TWO_INPUTS = ("concat", "tfe_head")  # "inputs": [a, b]; every other kind has one "input"
_RUNS = " (this library runs DeepID, ResNet and TFE layer lists)"


def layer_ref(j):
    """How messages name a layer's input."""
    return "the input" if j < 0 else f"layers[{j}]"


class _ListWriter:
    """Appends layers (dicts); each ``add`` returns the new layer's index. ``input``: the
    index read (default: the previous layer; -1: the network input), or [a, b]."""

    def __init__(self):
        self.layers = []

    def add(self, kind, input=None, **fields):
        layer = {"kind": kind}
        if kind in TWO_INPUTS:
            layer["inputs"] = list(input)
        else:
            layer["input"] = len(self.layers) - 1 if input is None else input
        layer.update(fields)
        self.layers.append(layer)
        return len(self.layers) - 1


class _Layers:
    """A layer list checked as layers.cpp's Layers does: a list of objects with known kinds
    and inputs before them; hyper-parameters are checked when read."""

    def __init__(self, layers, file):
        self.file = file
        if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
            raise ModelFileError(f"{file}: layers: not a list of 1 to {MAX_LAYERS} layers")
        self.layers, self._inputs = layers, []
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                self.fail(i, "not a JSON object")
            kind = layer.get("kind")
            if not isinstance(kind, str):
                self.fail(i, 'missing "kind"')
            if kind not in _KINDS:
                self.fail(i, f'unknown kind "{printable(kind)}"')
            rng = f" in -1..{i - 1}"

            def earlier(v):
                return _is_int(v) and -1 <= v < i
            if kind in TWO_INPUTS:
                v = layer.get("inputs")
                if not (isinstance(v, list) and len(v) == 2 and all(earlier(j) for j in v)):
                    self.fail(i, f'"inputs" is not a list of two integers{rng}')
                self._inputs.append(list(v))
            else:
                if "input" in layer and not earlier(layer["input"]):
                    self.fail(i, f'"input" is not an integer{rng}')
                self._inputs.append([layer.get("input", i - 1)])

    def __len__(self):
        return len(self.layers)

    def fail(self, i, why, status="TFE_ERR_FORMAT"):
        raise ModelFileError(f"{self.file}: layers[{i}]: {why}", status)

    def require(self, i, ok, what):
        if not ok:
            self.fail(i, f"this library runs {what} here", "TFE_ERR_UNSUPPORTED")

    def kind(self, i):
        return self.layers[i]["kind"]

    def input(self, i):
        return self._inputs[i][0]

    def inputs(self, i):
        return self._inputs[i]

    def text(self, i, key):
        v = self.layers[i].get(key)
        if not isinstance(v, str):
            self.fail(i, f'"{key}" is not a string')
        return v

    def name(self, i):
        return self.text(i, "name")

    def integer(self, i, key, lo, hi):
        v = self.layers[i].get(key)
        if not _is_int(v) or not lo <= v <= hi:
            self.fail(i, f'"{key}" is not an integer in {lo}..{hi}')
        return v

    def flag(self, i, key):
        v = self.layers[i].get(key)
        if type(v) is not bool:
            self.fail(i, f'"{key}" is not true or false')
        return v

    def eps(self, i):
        v = self.layers[i].get("eps")
        if type(v) not in (int, float) or not 0 < v <= 1:
            self.fail(i, '"eps" is not a number in (0, 1]')
        return v

    def dropout_rate(self, i):
        v = self.layers[i].get("p")
        if type(v) not in (int, float) or not 0 <= v < 1:
            self.fail(i, '"p" is not a number in [0, 1)')
        return v

    def input_width(self, i, key, have, source):
        """Layer i's ``key``, which must equal ``have``, the width of ``source``."""
        v = self.integer(i, key, 1, MAX_FEATURES)
        if v != have:
            self.fail(i, f'"{key}" is {v} where {source} has {have}')
        return v


class _Cursor:
    """Walks a layer list in the order of the networks this library runs (graph.cpp)."""

    def __init__(self, layers):
        self.L, self.pos = layers, 0

    def next(self, kind, source, source2=None):
        """The index of the next layer, which must be a ``kind`` reading ``source`` (and
        ``source2``)."""
        want = f'a "{kind}" layer reading {layer_ref(source)}'
        if source2 is not None:
            want += f" and {layer_ref(source2)}"
        if self.pos >= len(self.L):
            raise ModelFileError(f"{self.L.file}: layers: the list ends where {want} is expected"
                                 f"{_RUNS}", "TFE_ERR_UNSUPPORTED")
        expected = [source] if source2 is None else [source, source2]
        if self.L.kind(self.pos) != kind or self.L.inputs(self.pos) != expected:
            self.L.fail(self.pos, f"expected {want}{_RUNS}", "TFE_ERR_UNSUPPORTED")
        self.pos += 1
        return self.pos - 1

    def at(self, kind):
        return self.pos < len(self.L) and self.L.kind(self.pos) == kind


class ValidModel:
    """What validate_model found: architecture (dict), layer list, input size, labels, the float32
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
    r.name_field(arch)
    if "layers" in c.metadata or c.metadata["format"] != "tfe-1":
        layers = r.meta_json("layers")
    else:  # written before the layer list was stored
        layers = r.layers_from_architecture(arch, s)
    classes = r.network(layers, s)
    if classes != len(labels):
        r.fail(f"{len(labels)} labels for a network with {classes} outputs")
    r.get("selftest.input", (1, 1, s, s))
    logits = r.get("selftest.logits", (1, classes))
    scale = max(1.0, float(np.abs(logits).max()))
    tolerance = np.float32(SELFTEST_TOLERANCE * scale)
    r.check_all_used()
    return ValidModel(architecture=arch, layers=layers, input_size=s, labels=list(labels),
                      tensors=r.arrays, selftest_tolerance=tolerance)


def layers_from_architecture(arch, size, name="architecture"):
    """The layer list an architecture JSON describes for size x size input (the list of a
    file written before lists were stored); ModelFileError when ``arch`` is refused."""
    return _Reader(Container(name, {}, {}, b"")).layers_from_architecture(arch, size)


def nonfinite_logit(image):
    """The message of a prediction that overflows (c_api.cpp nonfinite_logit)."""
    return f"image {image}: the model computes a non-finite logit (its weights overflow float32)"


def selftest_failure(diff, tolerance):
    """The message of a failed self-test (graph.cpp selftest_failure)."""
    return (f"self-test failed: max |logit difference| {float(diff):.3g} exceeds the tolerance "
            f"{float(tolerance):.3g} (the weights do not compute the file's stored logits)")
