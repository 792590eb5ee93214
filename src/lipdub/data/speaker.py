"""Which visible face is talking: correlate each face's lip opening with the clip's speech loudness."""

from __future__ import annotations

import numpy as np

from lipdub.data.store import SAMPLES_PER_FRAME
from lipdub.faces.types import Face

# FaceMesh indices: inner lip midpoints and the mouth corners
UPPER_LIP, LOWER_LIP, LEFT_CORNER, RIGHT_CORNER = 13, 14, 61, 291
MAX_LAG = 3  # frames the mouth may lead or trail the sound


def lip_opening(face: Face) -> float:
    """Inner-lip gap relative to mouth width (scale free); NaN without landmarks."""
    lm = face.landmarks
    if lm is None or len(lm) <= RIGHT_CORNER:
        return float("nan")
    gap = np.linalg.norm(lm[UPPER_LIP] - lm[LOWER_LIP])
    width = np.linalg.norm(lm[LEFT_CORNER] - lm[RIGHT_CORNER])
    return float(gap / width) if width > 0 else float("nan")


def loudness(wav16k: np.ndarray, n_frames: int) -> np.ndarray:
    """Log RMS (dB) of each 25 fps frame's 640 samples, `(n_frames,)`; missing audio counts as silence."""
    need = n_frames * SAMPLES_PER_FRAME
    wav = np.pad(wav16k[:need], (0, max(0, need - len(wav16k))))
    rms = np.sqrt((wav.reshape(n_frames, SAMPLES_PER_FRAME).astype(np.float64) ** 2).mean(axis=1))
    return 20 * np.log10(rms + 1e-4)


def sync_score(opening: np.ndarray, loud: np.ndarray, min_frames: int = 25) -> float:
    """Best Pearson correlation between lip opening and loudness within +-MAX_LAG frames (NaN frames skipped).

    A talking face scores ~0.3-0.7; a face that is silent or lip-syncs other audio scores near 0.
    Returns NaN when fewer than `min_frames` frames overlap.
    """
    best = float("nan")
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        a = opening[max(0, -lag): len(opening) - max(0, lag)]
        b = loud[max(0, lag): len(loud) - max(0, -lag)]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < min_frames or a[ok].std() < 1e-6 or b[ok].std() < 1e-6:
            continue
        r = float(np.corrcoef(a[ok], b[ok])[0, 1])
        best = r if not np.isfinite(best) else max(best, r)
    return best


def track_openings(faces_by_frame: list[list[Face]], track_ids: list[int]) -> dict[int, np.ndarray]:
    """Per track: the lip opening in every frame (NaN where the track is absent or has no landmarks)."""
    out = {t: np.full(len(faces_by_frame), np.nan) for t in track_ids}
    for i, faces in enumerate(faces_by_frame):
        for f in faces:
            if f.track_id in out:
                out[f.track_id][i] = lip_opening(f)
    return out
