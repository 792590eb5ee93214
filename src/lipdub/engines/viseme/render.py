"""Render one face in one pose: warp the lower face, paint the opened mouth, return pixels + a soft alpha."""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from lipdub.engines.base import Patch
from lipdub.engines.viseme.mouth import MouthColours, SourceMouth, paint_mouth
from lipdub.engines.viseme.warp import MouthWarp, pose_key
from lipdub.media.image import blend


class FaceRenderer:
    """A face prepared for posing: its warp (fields precomputed) and mouth colours; caches recent poses."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray, cache_size: int = 32):
        self.warp = MouthWarp(landmarks, image.shape)
        top, bottom, left, right = self.warp.roi
        roi = np.ascontiguousarray(image[top:bottom, left:right])
        # colours from the lower-face ROI (it holds the lips and cheeks), not a whole-frame mask: ~3 ms at 720p
        self.colours = MouthColours.sample(roi, self.warp.lm - self.warp.origin)
        self.own_mouth = SourceMouth.of(roi, self.warp.origin, self.warp.lm, self.warp.ff)
        self.mouth = self.own_mouth  # the interior the painter reuses (the engine may lend a better one)
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache_size
        self.pixels_crc: int | None = None  # set by the engine: which pixels the cached poses belong to

    def use_mouth(self, mouth: SourceMouth | None) -> None:
        """Paint with this mouth interior from now on (cached poses drawn with another one are dropped)."""
        if mouth is not self.mouth:
            self.mouth = mouth
            self._cache.clear()

    def render(self, image: np.ndarray, pose: np.ndarray, cacheable: bool = False) -> Patch:
        """The lower-face patch of `image` with the mouth in `pose`; `cacheable` when `image` is a still."""
        key = pose_key(pose) if cacheable else None
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            out, alpha = self._cache[key]
        else:
            out, alpha = self._render(image, pose)
            if key is not None:
                self._cache[key] = (out, alpha)
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return Patch(box=self.warp.roi, image=out, mask=alpha)

    def _render(self, image: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self.warp
        top, bottom, left, right = w.roi
        src = np.ascontiguousarray(image[top:bottom, left:right])
        (m_up, m_lo), below, targets = w.maps(pose)
        up = cv2.remap(src, m_up, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lo = cv2.remap(src, m_lo, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = blend(up, lo, below)  # each pixel takes the field of its side of the new lip line
        alpha = _moved(m_up, m_lo, below, w.pixel_xy)
        alpha -= 0.01
        alpha *= 4.0
        np.clip(alpha, 0.0, 1.0, out=alpha)  # under 1/100 px: the original pixel
        inner = paint_mouth(out, w.origin, w.ff, targets, pose, self.colours, self.mouth)
        alpha = np.maximum(alpha, inner)
        cv2.copyTo(src, (alpha <= 0).view(np.uint8), out)  # one pass; a where= broadcast over 3 channels is slow
        return out, alpha.astype(np.float32)


def _moved(m_up: np.ndarray, m_lo: np.ndarray, below: np.ndarray, pixel_xy: tuple[np.ndarray, np.ndarray]
           ) -> np.ndarray:
    """How far (pixels) each pixel's source moved: the field of its side of the lip line (in place, float32)."""
    px, py = pixel_xy
    moved = np.zeros(below.shape, np.float32)
    for m, weight in ((m_up, 1 - below), (m_lo, below)):
        dx = m[..., 0] - px
        np.hypot(dx, m[..., 1] - py, out=dx)
        dx *= weight
        moved += dx
    return moved


def apply_patch(frame: np.ndarray, patch: Patch) -> np.ndarray:
    """Blend a patch into a copy of `frame` with its own alpha (for previews, sheets and tests)."""
    out = frame.copy()
    top, bottom, left, right = patch.box
    mask = patch.mask if patch.mask is not None else np.ones(patch.image.shape[:2], np.float32)
    out[top:bottom, left:right] = blend(out[top:bottom, left:right], patch.image, mask)
    return out
