"""The fade ramp: per-frame weights that bring an edit in and out around frames where it is absent.

One home for the ramp that `faces.FaceTracks.strength` (a face coming and going) and the pipeline's edit strength
(`composite`, speech starting and stopping) both use; it lives low in the flow so either may import it.
"""

from __future__ import annotations

import numpy as np


def fade_weights(present: np.ndarray, frames: int = 4) -> np.ndarray:
    """(n,) float32: 0 where absent, ramping 1/frames, 2/frames, .. 1 with the distance to the nearest absent
    frame (1 everywhere when nothing is absent)."""
    present = np.asarray(present, bool)
    absent = np.flatnonzero(~present)
    if not len(absent):
        return np.ones(len(present), np.float32)
    idx = np.arange(len(present))
    pos = np.searchsorted(absent, idx)
    left = np.where(pos > 0, idx - absent[np.maximum(pos - 1, 0)], np.inf)
    right = np.where(pos < len(absent), absent[np.minimum(pos, len(absent) - 1)] - idx, np.inf)
    dist = np.minimum(left, right)  # 0 at an absent frame
    return np.clip(dist / frames, 0.0, 1.0).astype(np.float32)
