"""Still images: decode any PIL-readable picture to (H, W, 3) uint8 RGB, upright per its EXIF orientation;
alpha-blend one image over another (the one blend composite and the viseme engine share)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

from lipdub.errors import MediaError
from lipdub.media.info import check_exists, check_size, still_image


def to_rgb(im: Image.Image) -> np.ndarray:
    """A PIL image of any mode as (H, W, 3) uint8 RGB.

    Alpha is flattened onto white (what a viewer sees for a transparent background); palette, grayscale,
    CMYK and 16-bit/float pictures are converted (16-bit scaled by 1/257, float taken as 0..1 or 0..255).
    """
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        scale = 1 / 257 if im.mode != "F" else (255.0 if arr.max(initial=0) <= 1.0 else 1.0)
        gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode == "P" and "transparency" in im.info or im.mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa"):
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im.convert("RGBA"))
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a still picture (PNG/JPEG/WebP/BMP/TIFF/one-frame GIF...) to upright (H, W, 3) uint8 RGB.

    Raises MediaError for a missing file, a file that is not a still picture, or one smaller than 8x8 px.
    """
    p = check_exists(path)
    im = still_image(p)
    if im is None:
        raise MediaError("is not a still image", p)
    try:
        with im:
            im.load()
            rgb = to_rgb(ImageOps.exif_transpose(im))
    except (OSError, ValueError, SyntaxError) as err:
        raise MediaError(f"image cannot be decoded ({err})", p) from err
    check_size(rgb.shape[1], rgb.shape[0], p, "image")
    return rgb


def blend(base: np.ndarray, top: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`top` over `base` (same size, uint8 or float 0..255) with per-pixel `alpha` (h, w) in [0, 1], as uint8
    rounded to nearest; pixels where alpha <= 0 keep `base` exactly."""
    import cv2  # lazily: reading media needs no OpenCV

    a = np.asarray(alpha, np.float32)
    if base.ndim == 3:  # alpha per channel, contiguous: numpy's broadcast over a 3-long axis is ~4x slower
        a = cv2.merge([a] * base.shape[2])
    mixed = base.astype(np.float32)  # base * (1 - a) + top * a, in place: it runs per pixel of every frame
    mixed *= 1.0 - a
    upper = top.astype(np.float32)
    upper *= a
    mixed += upper
    np.rint(mixed, out=mixed)
    np.clip(mixed, 0, 255, out=mixed)
    out = mixed.astype(np.uint8)
    np.copyto(out, base, where=a <= 0.0)
    return out
