"""The crop a face is generated in: the face box grown to hold the whole jaw and chin, plus a pad below."""

from __future__ import annotations

import math

import numpy as np

from lipdub.faces.landmarks import JAW
from lipdub.faces.types import Face

# Wav2Lip pads its S3FD box by 10 rows below the chin for ~200 px faces: 5% of the face height.
PAD_BELOW = 0.05


def crop_box(face: Face, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) ints, bottom/right exclusive, clipped to the frame.

    Covers `face.box` and every landmark, and reaches `PAD_BELOW` face heights under the lowest jaw point,
    so a generated lower face never leaves a still chin below a moving mouth. Deterministic: the same face
    gives the same crop (data prep relies on it).
    """
    h, w = frame_shape[:2]
    x1, y1, x2, y2 = (float(v) for v in face.box[:4])
    if face.landmarks is not None and len(face.landmarks):
        lm = np.asarray(face.landmarks, np.float64)
        x1, x2 = min(x1, float(lm[:, 0].min())), max(x2, float(lm[:, 0].max()))
        y1 = min(y1, float(lm[:, 1].min()))
        y2 = max(y2, float(lm[JAW, 1].max()) if len(lm) > max(JAW) else float(lm[:, 1].max()))
    y2 += PAD_BELOW * (y2 - y1)
    top, bottom = max(0, math.floor(y1)), min(h, math.ceil(y2) + 1)
    left, right = max(0, math.floor(x1)), min(w, math.ceil(x2) + 1)
    return int(top), int(max(bottom, top + 1)), int(left), int(max(right, left + 1))
