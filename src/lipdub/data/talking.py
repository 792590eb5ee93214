"""Which visible face is talking (a cue for `data filter`): correlate each face's lip opening with the clip's speech
loudness. (Not audio/speakers.py, which assigns audio tracks to faces in `animate --speaker`.)
"""

from __future__ import annotations

import numpy as np

from lipdub.data.store import SAMPLES_PER_FRAME
from lipdub.faces.types import Face

# FaceMesh indices: outer lip midpoints and the mouth corners
UPPER_LIP, LOWER_LIP, LEFT_CORNER, RIGHT_CORNER = 0, 17, 61, 291
LAGS = range(-1, 5)  # frames by which the sound may trail (mostly) or lead the mouth
SMOOTH = 3  # frames of moving average on both signals
MIN_MOTION = 0.015  # std of the opening below this is landmark jitter, not speech (talking: ~0.05-0.1)


def lip_opening(face: Face) -> float:
    """Outer-lip height relative to mouth width (scale free); NaN without landmarks."""
    lm = face.landmarks
    if lm is None or len(lm) <= RIGHT_CORNER:
        return float("nan")
    gap = np.linalg.norm(lm[UPPER_LIP] - lm[LOWER_LIP])
    width = np.linalg.norm(lm[LEFT_CORNER] - lm[RIGHT_CORNER])
    return float(gap / width) if width > 0 else float("nan")


def loudness(wav16k: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS of each 25 fps frame's 640 samples, `(n_frames,)`; missing audio counts as silence."""
    need = n_frames * SAMPLES_PER_FRAME
    wav = np.pad(wav16k[:need], (0, max(0, need - len(wav16k))))
    return np.sqrt((wav.reshape(n_frames, SAMPLES_PER_FRAME).astype(np.float64) ** 2).mean(axis=1))


def _smooth(x: np.ndarray) -> np.ndarray:
    """Moving average over SMOOTH frames (NaN stays NaN)."""
    return np.convolve(x, np.ones(SMOOTH) / SMOOTH, mode="same")


def sync_score(opening: np.ndarray, loud: np.ndarray, min_frames: int = 25) -> float:
    """Best Pearson correlation of (smoothed) lip opening with loudness over LAGS (NaN frames skipped).

    A weak, cheap cue (on a 60 s talking-head test ~0.3 for the matching audio over 5 s windows, ~0 for
    unrelated audio, with wide spread): use it to rank faces within one clip, not as proof. 0 for a mouth
    that does not move (std under MIN_MOTION); NaN when fewer than `min_frames` frames overlap.
    """
    if np.isfinite(opening).sum() >= min_frames and np.nanstd(opening) < MIN_MOTION:
        return 0.0
    opening, loud = _smooth(opening), _smooth(loud)
    best = float("nan")
    for lag in LAGS:
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
