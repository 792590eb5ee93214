"""Putting generated mouths back into frames: the reference rectangle paste, or a feathered lower-face blend."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from lipdub.engines.base import Patch
from lipdub.faces.types import Face
from lipdub.media.image import blend

PasteMode = Literal["blend", "box"]

# FaceMesh points of the lower face: the jaw line from cheek to cheek through the chin, then the point under the
# nose closes the polygon. Everything the generator changes (lips, teeth, jaw, chin) lies inside it.
LOWER_FACE = [93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 2]


def composite(frame: np.ndarray, patch: Patch, mode: PasteMode = "blend", face: Face | None = None,
              strength: float = 1.0) -> np.ndarray:
    """Return `frame` with `patch` pasted in. The input frame is never modified.

    `box` overwrites the whole rectangle (Wav2Lip's geometry, bit-exact at strength 1). `blend` uses the
    patch's own mask if it has one, else a soft lower-face mask from the landmarks (an ellipse when there are
    none), so neither the rectangle edge nor a chin line shows. `strength` in [0, 1] fades the edit.
    """
    out = frame.copy()
    if strength <= 0.0:
        return out
    top, bottom, left, right = patch.box
    region = out[top:bottom, left:right]
    if patch.image.shape[:2] != region.shape[:2]:
        raise ValueError(f"patch {patch.image.shape[:2]} does not fit box {patch.box} in frame {frame.shape[:2]}")
    if mode == "box" and patch.mask is None:
        alpha = None if strength >= 1.0 else np.full(region.shape[:2], strength, np.float32)
    else:
        alpha = patch.mask if patch.mask is not None else lower_face_mask(patch.box, face)
        alpha = alpha * np.float32(min(strength, 1.0))
    if alpha is None:
        region[...] = patch.image
    else:
        region[...] = blend(region, patch.image, alpha)
    return out


def lower_face_mask(box: tuple[int, int, int, int], face: Face | None) -> np.ndarray:
    """Soft (h, w) float32 mask in [0, 1] over the lower face inside `box`, feathered and zero at the box edges."""
    top, bottom, left, right = box
    h, w = bottom - top, right - left
    mask = np.zeros((h, w), np.float32)
    if face is not None and face.landmarks is not None and len(face.landmarks) > max(LOWER_FACE):
        pts = face.landmarks[LOWER_FACE] - np.array([left, top], np.float32)
        # grow the polygon a little around its centre so the chin edge lies inside the blended area
        centre = pts.mean(axis=0)
        pts = centre + (pts - centre) * 1.08
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0)
    else:
        # no landmarks (--box): an ellipse over the lower 60 % of the box
        cv2.ellipse(mask, (w // 2, int(h * 0.68)), (int(w * 0.42), int(h * 0.32)), 0, 0, 360, 1.0, -1)
    feather = max(1.0, 0.06 * min(h, w))
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=feather)
    # taper to zero over the outermost pixels so no rectangle edge can show
    margin = max(2, int(round(feather)))
    ramp_y = np.clip(np.minimum(np.arange(h), np.arange(h)[::-1]) / margin, 0, 1).astype(np.float32)
    ramp_x = np.clip(np.minimum(np.arange(w), np.arange(w)[::-1]) / margin, 0, 1).astype(np.float32)
    mask *= ramp_y[:, None] * ramp_x[None, :]
    mask[mask < 1e-3] = 0.0
    return mask


