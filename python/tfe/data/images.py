"""Reading one image file: the single place where tfe opens images (``tfe-predict`` and
every training loader), so that a file gives the same pixels wherever it is read.

``read_image(path)`` returns uint8 [H, W] for gray images and uint8 [H, W, 3] for colour
ones; the gray value of a colour image is taken later, by ``transforms.to_gray`` (BT.601),
the same way for files and for the raw RGB pixels the C library is given.

Modes (Pillow's names), converted to 8 bits per channel:

- ``1``, ``L``, ``P`` (palette), ``LA``, ``PA``, ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``,
  ``LAB``, ``HSV``: Pillow's own conversion to L or RGB. Alpha is ignored (the colour under
  it is used): face photos are opaque, and compositing on an arbitrary background colour
  would invent pixels.
- 16-bit gray (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) and ``I`` (Pillow opens 16-bit
  PGM/PPM as 32-bit ``I``, scaled by it to 0-65535 whatever their maxval): scaled by the
  bit depth, v8 = round(v16 / 257), so 65535 is white and an 8-bit image saved as 16 bits
  (v16 = 257 v8) reads back exactly. Not by the image's own min..max: that would turn a
  dark face bright and make the same face read differently in two exposures. ``I`` values
  outside 0-65535 (real 32-bit data) have no known white level and are refused.
- ``F`` (32-bit float): values in [0, 1] are scaled by 255 (the float-image convention);
  anything else (outside [0, 1], NaN, inf) has no known white level and is refused.

Refused, with one line naming the file (``BadImage``): files Pillow cannot identify or
decode (truncated, corrupt, not an image, a folder), images of more than ``MAX_PIXELS``
pixels (decompression bombs: a small PNG can declare 20000 x 20000 pixels and take
gigabytes to decode; the size is checked from the header, before decoding), and the
refused modes above. Multi-frame files (GIF, TIFF) give their first frame.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from ..errors import InputError

__all__ = ["BadImage", "MAX_PIXELS", "read_image"]

# 64 megapixels (8192 x 8192): far above any face photo or camera frame tfe is given (CK+
# frames are 640 x 490), low enough that decoding stays within a few hundred MB.
MAX_PIXELS = 64 * 1024 * 1024

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_GRAY = ("1", "L", "LA")


class BadImage(InputError):
    """An image file that cannot be used; the message names the file."""


def read_image(path, data: bytes | None = None) -> np.ndarray:
    """uint8 [H, W] (gray) or [H, W, 3] (colour) from any file Pillow reads (module doc).

    data: the file's bytes when the caller has read them already (e.g. to hash them);
    ``path`` then only names the file in errors."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError("reading images needs Pillow (pip install pillow)") from None
    # Pillow warns about its own bomb limit (ours below is stricter and says what it is)
    # and about damaged metadata it skips (which does not change the pixels); those
    # warnings name no file, so they are not shown.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read(Image, path, data)


def _read(Image, path, data):
    try:
        im = Image.open(path if data is None else io.BytesIO(data))
    except Image.DecompressionBombError:
        raise BadImage(f"{path}: image too large (over {MAX_PIXELS} pixels: refused as a "
                       "possible decompression bomb)") from None
    except Exception as e:  # any failure to identify an untrusted file means "cannot read"
        raise BadImage(f"{path}: cannot read image ({_reason(e)})") from None
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise BadImage(f"{path}: image too large ({w}x{h} = {w * h} pixels, limit "
                           f"{MAX_PIXELS}: refused as a possible decompression bomb)")
        if w == 0 or h == 0:
            raise BadImage(f"{path}: empty image ({w}x{h})")
        try:
            im.load()
            mode = im.mode
            if mode in _SIXTEEN_BIT or mode == "F":
                raw = np.asarray(im)
            elif mode in _GRAY:
                raw = np.asarray(im.convert("L"))
            else:
                if mode in ("P", "PA"):  # a palette with transparency converts via RGBA
                    im = im.convert("RGBA")
                raw = np.asarray(im.convert("RGB"))
        except Exception as e:  # Pillow's decoders raise many types on corrupt data
            raise BadImage(f"{path}: cannot read image ({_reason(e)})") from None
    if mode in _SIXTEEN_BIT:
        return _from_sixteen_bit(path, raw, mode)
    if mode == "F":
        return _from_float(path, raw)
    return np.ascontiguousarray(raw, np.uint8)


def _reason(e: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(e, UnidentifiedImageError):
        return "not an image format Pillow recognises"
    if isinstance(e, OSError) and e.strerror:  # no such file, is a directory, permission
        return e.strerror.lower()
    text = " ".join(str(e).split())
    if isinstance(e, (OSError, SyntaxError)) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _from_sixteen_bit(path, raw, mode):
    v = raw.astype(np.int64)
    if v.size and (v.min() < 0 or v.max() > 65535):
        raise BadImage(f"{path}: 32-bit integer image with values {v.min()}..{v.max()} "
                       "outside 0-65535: no known white level (save it as 8 or 16 bits)")
    return ((v + 128) // 257).astype(np.uint8)  # round(v / 257): 0 -> 0, 65535 -> 255


def _from_float(path, raw):
    v = raw.astype(np.float64)
    if not np.isfinite(v).all():
        raise BadImage(f"{path}: float image with NaN or infinite pixels")
    if v.size and (v.min() < 0 or v.max() > 1):
        raise BadImage(f"{path}: float image with values {v.min():g}..{v.max():g} outside "
                       "[0, 1]: no known white level (save it as 8 or 16 bits)")
    return np.rint(v * 255).astype(np.uint8)
