"""Preprocessing and augmentation for grayscale face crops, vectorised in NumPy.

* ``Normalizer``: the paper's "per-pixel mean subtraction and standard-deviation
  normalisation" (Sec. 4.3): a mean and a std image fitted on the *training* images only
  (fitting on validation or test data would leak them into the model), stored in the
  model's metadata so prediction applies exactly the same map.
* ``Augmenter``: horizontal flip, shift and rotation (the paper's FER+ augmentation), one
  affine map per image applied by bilinear sampling with index arithmetic over the whole
  batch; the parameters are a function of (seed, epoch, batch index), so a run can be
  reproduced or resumed batch for batch.
* ``resize_gray``: any H x W (x 3/4) uint8 image to size x size grayscale, for prediction on
  arbitrary images: area averaging when shrinking (no aliasing), bilinear when enlarging.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["Augmenter", "Normalizer", "resize_gray", "to_gray"]


class Normalizer:
    """Per-pixel standardisation: x -> (x - mean[h, w]) / std[h, w].

    Args:
        mean: float32 [H, W], in gray levels (0..255).
        std: float32 [H, W], in gray levels, already floored (see ``fit``).
    """

    kind = "per_pixel_mean_std"

    def __init__(self, mean, std):
        mean = np.asarray(mean, np.float32)
        std = np.asarray(std, np.float32)
        if mean.ndim != 2:
            raise ValueError(f"mean: expected an [H, W] array, got shape {mean.shape}")
        if std.shape != mean.shape:
            raise ValueError(f"std: expected shape {mean.shape}, got {std.shape}")
        if not (np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("std: must be finite and positive")
        self.mean = np.ascontiguousarray(mean)
        self.std = np.ascontiguousarray(std)
        self._inv_std = (1.0 / self.std.astype(np.float64)).astype(np.float32)

    @classmethod
    def fit(cls, images, min_std: float = 1.0) -> "Normalizer":
        """Fit on training images (uint8 or float [N, H, W], gray levels).

        ``min_std`` (gray levels) floors the std so that pixels that hardly vary in the
        training set (a constant border) are not blown up into noise at test time.
        """
        x = np.asarray(images)
        if x.ndim != 3 or x.shape[0] == 0:
            raise ValueError(f"images: expected a non-empty [N, H, W] array, got shape {x.shape}")
        # Accumulate in float64 by chunks: exact enough for 10^6 images, bounded memory.
        n = x.shape[0]
        s = np.zeros(x.shape[1:], np.float64)
        s2 = np.zeros(x.shape[1:], np.float64)
        for i in range(0, n, 4096):
            c = x[i : i + 4096].astype(np.float64)
            s += c.sum(axis=0)
            s2 += np.square(c).sum(axis=0)
        mean = s / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
        std = np.maximum(np.sqrt(var), float(min_std))
        return cls(mean.astype(np.float32), std.astype(np.float32))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.mean.shape)

    def apply(self, images) -> np.ndarray:
        """uint8 or float gray levels [N, H, W] (or one [H, W] image) -> float32 [N, 1, H, W]."""
        x = np.asarray(images)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != self.mean.shape:
            raise ValueError(
                f"images: expected [N, {self.mean.shape[0]}, {self.mean.shape[1]}], got {x.shape}"
            )
        out = np.empty((x.shape[0], 1) + self.mean.shape, np.float32)
        np.subtract(x, self.mean, out=out[:, 0], dtype=np.float32)
        out *= self._inv_std
        return out

    __call__ = apply

    def to_dict(self) -> dict:
        """JSON-serialisable description; float32 values round-trip exactly via from_dict."""
        return {
            "kind": self.kind,
            "height": int(self.mean.shape[0]),
            "width": int(self.mean.shape[1]),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_arrays(cls, mean, std) -> "Normalizer":
        """From stored [H, W] mean and std arrays (e.g. model-file tensors)."""
        return cls(mean, std)

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std), float32 [H, W] copies, for storing as tensors."""
        return self.mean.copy(), self.std.copy()

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        if d.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"kind: expected {cls.kind!r}, got {d.get('kind')!r}")
        mean = np.asarray(d["mean"], np.float32)
        std = np.asarray(d["std"], np.float32)
        h, w = int(d.get("height", mean.shape[0])), int(d.get("width", mean.shape[-1]))
        return cls(mean.reshape(h, w), std.reshape(h, w))

    def __repr__(self) -> str:
        h, w = self.shape
        return f"Normalizer({h}x{w}, mean {self.mean.mean():.1f}, std {self.std.mean():.1f})"


class Augmenter:
    """Random horizontal flip, shift and rotation of a batch, reproducible from
    (seed, epoch, batch index).

    Each image gets one affine map about the image centre (flip, then rotate, then shift)
    and is resampled bilinearly; samples falling outside the image repeat the edge pixel.

    Args:
        flip: flip each image left-right with probability 1/2.
        max_shift: shifts are uniform in [-max_shift, max_shift] pixels, per axis.
        max_rotation: rotations are uniform in [-max_rotation, max_rotation] degrees.
        seed: non-negative integer.
    """

    def __init__(
        self, flip: bool = True, max_shift: float = 3.0, max_rotation: float = 10.0, seed: int = 0
    ):
        if max_shift < 0 or max_rotation < 0:
            raise ValueError("max_shift/max_rotation: must be non-negative")
        self.flip = bool(flip)
        self.max_shift = float(max_shift)
        self.max_rotation = float(max_rotation)
        self.seed = int(seed)

    def params(self, n: int, epoch: int = 0, batch_index: int = 0):
        """(flip bool [n], shift float64 [n, 2] as (dx, dy) pixels, angle float64 [n] degrees)."""
        rng = np.random.default_rng([self.seed, int(epoch), int(batch_index)])
        flip = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        shift = rng.uniform(-self.max_shift, self.max_shift, (n, 2))
        angle = rng.uniform(-self.max_rotation, self.max_rotation, n)
        return flip, shift, angle

    def __call__(self, images, epoch: int = 0, batch_index: int = 0) -> np.ndarray:
        """uint8/float [B, H, W] -> float32 [B, H, W] (gray levels), augmented."""
        images = np.asarray(images)
        flip, shift, angle = self.params(images.shape[0], epoch, batch_index)
        return self.transform(images, flip, shift, angle)

    @staticmethod
    def transform(images, flip, shift=None, angle=None) -> np.ndarray:
        """Apply explicit per-image maps to [B, H, W]; returns float32 [B, H, W].

        flip: bool [B]; shift: [B, 2] (dx, dy) pixels, positive = right/down; angle: [B]
        degrees, positive = counter-clockwise on screen. With no rotation and shift, a flip
        is exact (it samples at integer positions).
        """
        x = np.asarray(images)
        if x.ndim != 3:
            raise ValueError(f"images: expected [B, H, W], got shape {x.shape}")
        b, h, w = x.shape
        flip = np.asarray(flip, bool).reshape(b)
        shift = np.zeros((b, 2)) if shift is None else np.asarray(shift, np.float64).reshape(b, 2)
        angle = np.zeros(b) if angle is None else np.asarray(angle, np.float64).reshape(b)

        # Forward map about the centre c (x right, y down): p_out - c = S + R F (p_in - c),
        # F = diag(+-1, 1) the flip, R = [[cos, sin], [-sin, cos]] a counter-clockwise turn on
        # screen. We sample, so we need the inverse for every output pixel:
        #   p_in - c = F R^-1 (p_out - c - S),   R^-1 = [[cos, -sin], [sin, cos]].
        th = np.deg2rad(angle)
        cs, sn = np.cos(th), np.sin(th)
        fx = np.where(flip, -1.0, 1.0)
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        a11, a12 = fx * cs, fx * -sn
        a21, a22 = sn, cs
        tx, ty = shift[:, 0], shift[:, 1]
        c1 = cx - (a11 * tx + a12 * ty)
        c2 = cy - (a21 * tx + a22 * ty)
        a11, a12, c1, a21, a22, c2 = (
            v.astype(np.float32)[:, None, None] for v in (a11, a12, c1, a21, a22, c2)
        )
        xo = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, None, :]
        yo = (np.arange(h, dtype=np.float32) - np.float32(cy))[None, :, None]
        xs = a11 * xo + a12 * yo + c1
        ys = a21 * xo + a22 * yo + c2

        x0 = np.floor(xs)
        y0 = np.floor(ys)
        wx = xs - x0
        wy = ys - y0
        x0 = x0.astype(np.int32)
        y0 = y0.astype(np.int32)
        # Clamp after taking the weights: outside samples repeat the edge pixel.
        x1 = np.clip(x0 + 1, 0, w - 1)
        np.clip(x0, 0, w - 1, out=x0)
        y1 = np.clip(y0 + 1, 0, h - 1)
        np.clip(y0, 0, h - 1, out=y0)
        base = (np.arange(b, dtype=np.int32) * (h * w))[:, None, None]
        r0 = base + y0 * w
        r1 = base + y1 * w
        flat = x.reshape(-1)
        v00 = flat[r0 + x0].astype(np.float32)
        v01 = flat[r0 + x1].astype(np.float32)
        v10 = flat[r1 + x0].astype(np.float32)
        v11 = flat[r1 + x1].astype(np.float32)
        v01 -= v00
        v01 *= wx
        v00 += v01  # top row
        v11 -= v10
        v11 *= wx
        v10 += v11  # bottom row
        v10 -= v00
        v10 *= wy
        v00 += v10
        return v00

    def __repr__(self) -> str:
        return (f"Augmenter(flip={self.flip}, max_shift={self.max_shift}, "
                f"max_rotation={self.max_rotation}, seed={self.seed})")


def to_gray(image) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3|4] (RGB/RGBA) -> float64 [H, W] luma (ITU-R BT.601)."""
    x = np.asarray(image)
    if x.ndim == 2:
        return x.astype(np.float64)
    if x.ndim == 3 and x.shape[2] in (3, 4):
        rgb = x[..., :3].astype(np.float64)
        return rgb @ np.array([0.299, 0.587, 0.114])
    if x.ndim == 3 and x.shape[2] == 1:
        return x[..., 0].astype(np.float64)
    raise ValueError(f"image: expected [H, W] or [H, W, 3|4], got shape {x.shape}")


@functools.lru_cache(maxsize=64)
def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] linear map along one axis: area averaging when shrinking, bilinear
    (half-pixel centres, edge clamped) when enlarging or keeping the size."""
    m = np.zeros((n_out, n_in))
    if n_out < n_in:
        # Output pixel i covers input interval [i*s, (i+1)*s); weight = overlap length / s.
        s = n_in / n_out
        edges = np.arange(n_out + 1) * s
        for i in range(n_out):
            lo, hi = edges[i], edges[i + 1]
            j = np.arange(int(np.floor(lo)), min(n_in, int(np.ceil(hi))))
            m[i, j] = np.minimum(j + 1, hi) - np.maximum(j, lo)
        m /= s
    else:
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        j0 = np.floor(pos).astype(int)
        t = pos - j0
        rows = np.arange(n_out)
        np.add.at(m, (rows, np.clip(j0, 0, n_in - 1)), 1.0 - t)
        np.add.at(m, (rows, np.clip(j0 + 1, 0, n_in - 1)), t)
    m.flags.writeable = False  # cached and shared between calls
    return m


def resize_gray(image, size: int = 48, keep_aspect: bool = True) -> np.ndarray:
    """Any uint8 [H, W] / [H, W, 3|4] image -> uint8 [size, size] grayscale.

    keep_aspect: centre-crop the longer side to a square first (a face crop keeps its
    proportions); False stretches the whole image.
    """
    g = to_gray(image)
    h, w = g.shape
    if h == 0 or w == 0:
        raise ValueError("image: empty")
    if keep_aspect and h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        g = g[top : top + s, left : left + s]
        h = w = s
    out = _resample_matrix(h, size) @ g @ _resample_matrix(w, size).T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
