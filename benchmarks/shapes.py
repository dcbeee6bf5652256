"""The layer shapes of the paper's networks: the single source of truth for every benchmark.

Input images are 1x48x48 (grayscale). The ResNet reading is the one documented in
the project's performance anchors (shared/perf-anchors.md) (peer figures were measured on it):

  ResNet18 = 3x3 stem (1 -> 16) + three stages of widths 16 / 32 / 64 with [3, 3, 2] basic
  blocks; the first block of stages 2 and 3 is a stride-2 projection block (1x1 stride-2
  conv + BN on the shortcut); GAP; FC 64 -> 8.  ResNet12 = the same with [2, 2, 1] blocks.

The conv list is *derived* from that block structure (``resnet_layers``) rather than typed
in, so the counts, the FLOPs per image (161 MFLOP for ResNet18, 97 for ResNet12, as in the
anchors) and the batch-norm / residual counts cannot drift apart.  ``python shapes.py``
prints the tables and those totals.

Work is counted as
  * FLOPs = 2 x multiply-accumulates (conv, linear, GEMM); a backward pass costs one forward
    per gradient it computes (dx and dw), so forward+backward = 3x forward when dx is needed
    and 2x when it is not (the first layer's input is the image: no dx);
  * bytes = the compulsory memory traffic of one pass (every input read once, every output
    written once, float32); kernels that need two passes over an input show a lower GB/s.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

F32 = 4  # bytes per float32

IMAGE = (1, 48, 48)  # C, H, W of the network input
BATCHES = (128, 1)  # training batch of the paper, and single-image latency
CLASSES = 8  # expression classes (CK+ / FER+ with contempt)
EPS = 1e-5
MOMENTUM = 0.1  # batch-norm running-stat momentum
DROPOUT_P = 0.4  # DeepID's 160-d layer
SGD_LR, SGD_MOMENTUM, SGD_WEIGHT_DECAY = 0.1, 0.9, 5e-4

RESNET18_BLOCKS = (3, 3, 2)
RESNET12_BLOCKS = (2, 2, 1)
RESNET_WIDTHS = (16, 32, 64)


# ---------------------------------------------------------------------------------------------
# conv2d


@dataclass(frozen=True)
class Conv:
    """One convolution shape; ``count`` is how often it occurs in the network."""

    name: str
    cin: int
    cout: int
    h: int
    w: int
    k: int
    stride: int
    pad: int
    count: int = 1
    bias: bool = False  # ResNet convs feed a batch norm: no bias; DeepID convs have one
    needs_dx: bool = True  # False for a layer whose input is the image

    @property
    def ho(self) -> int:
        return (self.h + 2 * self.pad - self.k) // self.stride + 1

    @property
    def wo(self) -> int:
        return (self.w + 2 * self.pad - self.k) // self.stride + 1

    def x_shape(self, n: int) -> tuple:
        return (n, self.cin, self.h, self.w)

    def w_shape(self) -> tuple:
        return (self.cout, self.cin, self.k, self.k)

    def y_shape(self, n: int) -> tuple:
        return (n, self.cout, self.ho, self.wo)

    def macs(self, n: int) -> int:
        return n * self.cout * self.ho * self.wo * self.cin * self.k * self.k

    def flops_fwd(self, n: int) -> int:
        return 2 * self.macs(n)

    def flops_bwd(self, n: int) -> int:
        """dw always, dx when the layer needs it (db is O(output) and not counted)."""
        return self.flops_fwd(n) * (2 if self.needs_dx else 1)

    def flops_fwd_bwd(self, n: int) -> int:
        return self.flops_fwd(n) + self.flops_bwd(n)

    def gemms(self) -> list:
        """The per-image GEMMs of the im2col lowering, as (label, M, N, K, trans_a, trans_b).

        forward  y[Cout, HoWo]   = w[Cout, Ckk] . col[Ckk, HoWo]
        dw       dw[Cout, Ckk]  += dy[Cout, HoWo] . col[Ckk, HoWo]^T
        dx       dcol[Ckk, HoWo] = w[Cout, Ckk]^T . dy[Cout, HoWo]   (then col2im)
        csrc/ops/conv2d.cpp runs these as an implicit GEMM with its own micro-kernels (same
        M, N, K; N padded to the phase-plane width) and calls sgemm itself only for the
        stride-2 dx; so native.sgemm at these shapes measures the GEMM core where the convs
        live, not the conv kernel. If the lowering changes, change this one place.
        """
        ckk, p = self.cin * self.k * self.k, self.ho * self.wo
        out = [("fwd", self.cout, p, ckk, False, False), ("dw", self.cout, ckk, p, False, True)]
        if self.needs_dx:
            out.append(("dx", ckk, p, self.cout, True, False))
        return out

    @property
    def label(self) -> str:
        return (f"{self.cin}->{self.cout} {self.h}x{self.w} k{self.k} s{self.stride} "
                f"p{self.pad}")


def resnet_layers(blocks=RESNET18_BLOCKS, widths=RESNET_WIDTHS, image=IMAGE):
    """Every conv of a ResNet, in network order, as (role, Conv with count 1)."""
    c, h, w = image
    layers = [("stem", Conv("stem", c, widths[0], h, w, 3, 1, 1, needs_dx=False))]
    cin = widths[0]
    for stage, (nblocks, cout) in enumerate(zip(blocks, widths)):
        for b in range(nblocks):
            stride = 2 if (stage > 0 and b == 0) else 1
            layers.append(("conv1", Conv("", cin, cout, h, w, 3, stride, 1)))
            if stride != 1 or cin != cout:
                layers.append(("proj", Conv("", cin, cout, h, w, 1, stride, 0)))
            h, w = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
            layers.append(("conv2", Conv("", cout, cout, h, w, 3, 1, 1)))
            cin = cout
    return layers


def _conv_key(c: Conv) -> tuple:
    return (c.cin, c.cout, c.h, c.w, c.k, c.stride, c.pad, c.needs_dx)


def resnet_convs(blocks=RESNET18_BLOCKS) -> list:
    """The distinct conv shapes of a ResNet with their counts, in network order."""
    groups: "OrderedDict[tuple, list]" = OrderedDict()
    for role, c in resnet_layers(blocks):
        groups.setdefault(_conv_key(c), []).append((role, c))
    out = []
    for items in groups.values():
        role, c = items[0]
        kind = {"stem": "stem", "proj": "proj"}.get(role, "s2" if c.stride == 2 else "conv")
        name = f"{kind}_{c.cin}to{c.cout}_{c.h}"
        out.append(Conv(name, c.cin, c.cout, c.h, c.w, c.k, c.stride, c.pad, len(items),
                        c.bias, c.needs_dx))
    return out


RESNET18_CONVS = resnet_convs(RESNET18_BLOCKS)
RESNET12_CONVS = resnet_convs(RESNET12_BLOCKS)

# DeepID (DeepID2 ConvNet): conv 4x4x20 -> pool 2 -> 3x3x40 -> pool -> 3x3x60 -> pool -> 2x2x80,
# all valid (pad 0) convolutions with bias; FC 160 from flatten(pool3) ++ flatten(conv4).
DEEPID_CONVS = [
    Conv("deepid_conv1", 1, 20, 48, 48, 4, 1, 0, bias=True, needs_dx=False),  # -> 45x45
    Conv("deepid_conv2", 20, 40, 22, 22, 3, 1, 0, bias=True),  # -> 20x20
    Conv("deepid_conv3", 40, 60, 10, 10, 3, 1, 0, bias=True),  # -> 8x8
    Conv("deepid_conv4", 60, 80, 4, 4, 2, 1, 0, bias=True),  # -> 3x3
]


@dataclass(frozen=True)
class Pool:
    name: str
    c: int
    h: int
    w: int
    k: int
    stride: int
    pad: int = 0
    count: int = 1

    @property
    def ho(self) -> int:
        return (self.h + 2 * self.pad - self.k) // self.stride + 1

    @property
    def wo(self) -> int:
        return (self.w + 2 * self.pad - self.k) // self.stride + 1

    def bytes_fwd_bwd(self, n: int) -> int:
        xin, yout = n * self.c * self.h * self.w, n * self.c * self.ho * self.wo
        # fwd: read x, write y + int32 argmax; bwd: read dy + argmax, write dx
        return F32 * (xin + 2 * yout) + F32 * (2 * yout + xin)


DEEPID_POOLS = [
    Pool("deepid_pool1", 20, 45, 45, 2, 2),  # -> 22x22 (floor)
    Pool("deepid_pool2", 40, 20, 20, 2, 2),  # -> 10x10
    Pool("deepid_pool3", 60, 8, 8, 2, 2),  # -> 4x4
]
DEEPID_FC_IN = (60 * 4 * 4, 80 * 3 * 3)  # flatten(pool3) ++ flatten(conv4) = 960 + 720
DEEPID_FEATURE = 160
EMOTION_FEATURE = RESNET_WIDTHS[-1]  # 64 after GAP


# ---------------------------------------------------------------------------------------------
# activations of the ResNet: batch norm, ReLU, residual epilogue, GAP


@dataclass(frozen=True)
class Act:
    """An activation shape [N, C, H, W] (H = W = 1 for [N, C]) and how often an op meets it."""

    name: str
    c: int
    h: int = 1
    w: int = 1
    count: int = 1

    def shape(self, n: int) -> tuple:
        return (n, self.c, self.h, self.w) if self.h * self.w > 1 else (n, self.c)

    def numel(self, n: int) -> int:
        return n * self.c * self.h * self.w


def _resnet_act_counts(blocks=RESNET18_BLOCKS):
    """Per stage: standalone BN layers (stem, conv1 of each block, projection), BN->ReLU pairs
    (stem and conv1), and residual epilogues relu(bn(conv2) + shortcut) (one per block)."""
    c, h, w = IMAGE
    out = []
    for stage, (nblocks, width) in enumerate(zip(blocks, RESNET_WIDTHS)):
        if stage > 0:
            h, w = (h + 1) // 2, (w + 1) // 2
        relu = nblocks + (1 if stage == 0 else 0)
        proj = 1 if stage > 0 else 0
        out.append((width, h, w, relu + proj, relu, nblocks))
    return out


_ACTS = _resnet_act_counts()
# batch norm as its own op (its ReLU runs separately); the other BNs live in the residual
BN_ACTS = [Act(f"bn_{c}x{h}", c, h, w, nbn) for c, h, w, nbn, _, _ in _ACTS]
RELU_ACTS = [Act(f"relu_{c}x{h}", c, h, w, nrelu) for c, h, w, _, nrelu, _ in _ACTS]
RESIDUAL_ACTS = [Act(f"residual_{c}x{h}", c, h, w, nres) for c, h, w, _, _, nres in _ACTS]
ADD_ACTS = [Act(f"add_{c}x{h}", c, h, w, nres) for c, h, w, _, _, nres in _ACTS]
GAP_ACT = Act("gap_64x12", RESNET_WIDTHS[-1], _ACTS[-1][1], _ACTS[-1][2], 1)

# traffic of one fwd+bwd, float32 elements per activation element (compulsory passes)
BYTES_PER_ELEM = {
    "batchnorm": F32 * (2 + 3),  # fwd x->y; bwd dy,x->dx
    "relu": F32 * (2 + 3),  # fwd x->y; bwd dy,y->dx
    "add": F32 * 3,  # fwd a,b->y (backward is the identity: no kernel)
    "residual": F32 * (3 + 5),  # fwd x,s->y; bwd dy,y,x->dx,ds
    "gap": F32 * 2,  # fwd reads x, bwd writes dx (the [N,C] sides are negligible)
}


# ---------------------------------------------------------------------------------------------
# fully connected layers and the TFE head


@dataclass(frozen=True)
class Linear:
    name: str
    fin: int
    fout: int
    count: int = 1
    needs_dx: bool = True

    def flops_fwd(self, n: int) -> int:
        return 2 * n * self.fin * self.fout

    def flops_fwd_bwd(self, n: int) -> int:
        return self.flops_fwd(n) * (3 if self.needs_dx else 2)


LINEARS = [
    Linear("resnet_fc_64to8", EMOTION_FEATURE, CLASSES),  # baseline classifier after GAP
    Linear("deepid_fc_1680to160", sum(DEEPID_FC_IN), DEEPID_FEATURE),  # DeepID feature layer
    Linear("fc_160to8", DEEPID_FEATURE, CLASSES),  # classifier on the 160-d identity feature
    Linear("head_fc_224to8", DEEPID_FEATURE + EMOTION_FEATURE, CLASSES),  # inside the TFE head
]


@dataclass(frozen=True)
class Head:
    """TFE head: z_hat = BN1d(zi ++ ze); logits = z_hat @ w.T + b."""

    name: str = "tfe_head_160+64to8"
    di: int = DEEPID_FEATURE
    de: int = EMOTION_FEATURE
    o: int = CLASSES

    @property
    def d(self) -> int:
        return self.di + self.de

    def flops_fwd_bwd(self, n: int) -> int:
        return 3 * 2 * n * self.d * self.o


TFE_HEAD = Head()


@dataclass(frozen=True)
class Concat:
    name: str
    sizes: tuple  # C_j of each input [N, C_j]

    def bytes_fwd_bwd(self, n: int) -> int:
        return F32 * 4 * n * sum(self.sizes)  # fwd read+write, bwd read+write


CONCATS = [
    Concat("deepid_fc_in_960+720", DEEPID_FC_IN),
    Concat("tfe_zi+ze_160+64", (DEEPID_FEATURE, EMOTION_FEATURE)),
]

DROPOUT = Act("dropout_160", DEEPID_FEATURE)  # [N, 160], p = DROPOUT_P
DROPOUT_BYTES_PER_ELEM = F32 * 2 + 1 + (F32 * 2 + 1)  # fwd x->y,mask; bwd dy,mask->dx
CROSS_ENTROPY = Act("cross_entropy_8", CLASSES)  # logits [N, 8]


# ---------------------------------------------------------------------------------------------
# parameters of ResNet18, for the optimizer step


def resnet_param_shapes(blocks=RESNET18_BLOCKS) -> list:
    """Every trainable tensor: conv weights (no bias), BN gamma and beta per conv, the FC."""
    shapes = []
    for _, c in resnet_layers(blocks):
        shapes += [c.w_shape(), (c.cout,), (c.cout,)]
    shapes += [(CLASSES, EMOTION_FEATURE), (CLASSES,)]
    return shapes


RESNET18_PARAMS = resnet_param_shapes(RESNET18_BLOCKS)
RESNET18_PARAM_COUNT = sum(math.prod(s) for s in RESNET18_PARAMS)
SGD_BYTES_PER_PARAM = F32 * 5  # read p, g, buf; write p, buf


# ---------------------------------------------------------------------------------------------
# GEMM shapes


GEMM_SQUARE = (1024, 1024, 1024)


def conv_gemm_shapes(convs=RESNET18_CONVS) -> list:
    """Distinct per-image GEMMs of the given convs: (name, M, N, K, trans_a, trans_b)."""
    seen, out = set(), []
    for c in convs:
        for label, m, n, k, ta, tb in c.gemms():
            key = (m, n, k, ta, tb)
            if key not in seen:
                seen.add(key)
                out.append((f"{c.name}_{label}_{m}x{n}x{k}", m, n, k, ta, tb))
    return out


def network_mflops_per_image(convs, linears=()) -> float:
    return (sum(c.count * c.flops_fwd(1) for c in convs)
            + sum(l.count * l.flops_fwd(1) for l in linears)) / 1e6


def _main() -> None:
    for title, convs in (("ResNet18", RESNET18_CONVS), ("ResNet12", RESNET12_CONVS),
                         ("DeepID", DEEPID_CONVS)):
        total = network_mflops_per_image(convs)
        print(f"{title} convs ({total:.1f} MFLOP/image forward):")
        for c in convs:
            share = 100 * c.count * c.flops_fwd(1) / 1e6 / total
            print(f"  {c.name:22s} {c.label:26s} x{c.count}  -> {c.ho}x{c.wo}"
                  f"  {c.flops_fwd(1) / 1e6:6.2f} MFLOP/img  {share:4.1f} % of the net")
    print("ResNet18 activations (count = occurrences per forward):")
    for group in (BN_ACTS, RELU_ACTS, RESIDUAL_ACTS, [GAP_ACT]):
        for a in group:
            print(f"  {a.name:16s} [N,{a.c},{a.h},{a.w}] x{a.count}")
    print(f"ResNet18 parameters: {len(RESNET18_PARAMS)} tensors, {RESNET18_PARAM_COUNT:,} floats")
    print("conv GEMM shapes (per image):", len(conv_gemm_shapes()))


if __name__ == "__main__":
    _main()
