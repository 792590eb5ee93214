"""The mouth poses behind each viseme shape, as numbers the warp and the mouth painter understand.

Distances are in units of the face's nose-bridge-to-chin length `s` (about 12 cm on an adult), so every pose
scales with the face, so a small mouth in a photo opens as far, relative to its face, as a large one.
A frame's pose is the cue weights times this table; with acoustic articulation (`articulate`) the jaw and lip
opening follow the sound instead (JALI): its size from loudness and F1, its roundness from F2 and the shapes.
"""

from __future__ import annotations

import numpy as np

from lipdub.audio.cues import SHAPES

PARAMS: tuple[str, ...] = (
    "jaw",         # chin drop
    "gap_flat",    # inner-lip opening with a broad profile (spread vowels)
    "gap_round",   # inner-lip opening with a lens profile (rounded vowels)
    "lift",        # extra upper-lip raise that shows the upper teeth (F, V)
    "width",       # relative change of mouth width (negative: pucker)
    "roll",        # lower lip rolled up and in, under the upper teeth (F, V)
    "press",       # lips pressed together (P, B, M): both lips thin
    "teeth_up",    # how much of the upper incisors shows in the opening
    "teeth_low",   # lower incisors
    "tongue_low",  # tongue lying at the bottom of the cavity
    "tongue_up",   # tongue tip raised behind the upper teeth (L)
)
P = {name: i for i, name in enumerate(PARAMS)}
OPENING = [P["jaw"], P["gap_flat"], P["gap_round"]]  # scaled by loudness
LIPS = [P["gap_flat"], P["gap_round"], P["lift"]]  # what a closure (P, B, M) cancels

_TABLE: dict[str, dict[str, float]] = {
    "X": {},
    "A": {"press": 1.0},
    "B": {"jaw": 0.02, "gap_flat": 0.032, "width": 0.03, "teeth_up": 1.0, "teeth_low": 0.7},
    "C": {"jaw": 0.065, "gap_flat": 0.085, "width": 0.02, "teeth_up": 0.85, "teeth_low": 0.25, "tongue_low": 0.6},
    "D": {"jaw": 0.12, "gap_flat": 0.15, "width": -0.02, "teeth_up": 0.7, "teeth_low": 0.15, "tongue_low": 0.8},
    "E": {"jaw": 0.05, "gap_round": 0.075, "width": -0.12, "teeth_up": 0.45, "tongue_low": 0.5},
    "F": {"jaw": 0.025, "gap_round": 0.04, "width": -0.24, "teeth_up": 0.15},
    "G": {"jaw": 0.005, "lift": 0.03, "roll": 1.0, "teeth_up": 1.0},
    "H": {"jaw": 0.055, "gap_flat": 0.07, "width": 0.01, "teeth_up": 0.8, "tongue_up": 1.0},
}
TABLE = np.array([[_TABLE[s].get(p, 0.0) for p in PARAMS] for s in SHAPES], np.float32)


def pose(weights: np.ndarray, loudness: float | np.ndarray = 0.6) -> np.ndarray:
    """Blend shape weights `(..., n_shapes)` into poses `(..., n_params)`; louder speech opens wider
    (gain 0.6 at silence-level loudness up to 1.25 at the speech peak)."""
    w = np.asarray(weights, np.float32)
    p = w @ TABLE
    gain = 0.6 + 0.65 * np.clip(np.asarray(loudness, np.float32), 0.0, 1.0)
    p[..., OPENING] *= np.asarray(gain)[..., None]
    # a closure seals the lips even while neighbouring vowels still pull the jaw: lips meet from 50 % on
    seal = np.clip(1.0 - 2.0 * w[..., SHAPES.index("A")], 0.0, 1.0)[..., None]
    p[..., LIPS] *= seal
    return p


OPEN_MAX = 0.114  # lip opening (units of s) at full acoustic opening, calibrated on real speakers (bench_fidelity)
JAW_SHARE = 0.8  # chin drop per unit of lip opening
ROUND_WIDTH = -0.2  # width change of fully rounded lips
PUCKER_NARROW = 0.7  # how much of the opening puckered lips (F: UW, W) close: a small round hole
SEAL = (0.4, 0.8)  # a closure's (P, B, M) weight where its lips begin to seal, and where they are sealed


def articulate(weights: np.ndarray, opening: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """Poses whose opening follows the acoustics (JALI): per frame `opening` and `rounding` in [0, 1] set how
    wide and how round the mouth is; the shape weights say which lips and teeth show. A closure (P, B, M)
    seals the lips near the top of its weight (SEAL), so they stay shut about as long as real speakers' do (2-3
    frames at 25 fps; sealed from 50 % weight they stayed shut 4-5). F/V seals from 50 % weight on: the lower
    lip tucks up under the upper teeth (on real speakers a 0.8 seal for F/V left the gap open where theirs had
    closed). Puckered lips (UW, W) leave a small hole, PUCKER_NARROW of the opening closed."""
    w = np.asarray(weights, np.float32)
    opening, rounding = np.asarray(opening, np.float32), np.asarray(rounding, np.float32)
    p = w @ TABLE
    closing, tuck = w[..., SHAPES.index("A")], w[..., SHAPES.index("G")]
    seal = np.clip((closing - SEAL[0]) / (SEAL[1] - SEAL[0]), 0.0, 1.0)
    shut = np.maximum(seal, np.clip(2.0 * tuck, 0.0, 1.0))
    size = OPEN_MAX * opening * (1.0 - shut) * (1.0 - PUCKER_NARROW * w[..., SHAPES.index("F")])
    table_open = p[..., P["gap_flat"]] + p[..., P["gap_round"]]
    r = np.clip(p[..., P["gap_round"]] / np.maximum(table_open, 1e-6) + rounding, 0.0, 1.0)
    p[..., P["gap_flat"]] = size * (1 - r)
    p[..., P["gap_round"]] = size * r
    p[..., P["jaw"]] = JAW_SHARE * size
    p[..., P["width"]] += ROUND_WIDTH * rounding * (1.0 - shut)
    p[..., P["press"]] = closing
    p[..., P["lift"]] *= 1.0 - np.clip(2.0 * closing, 0.0, 1.0)
    return p


def shape_pose(shape: str) -> np.ndarray:
    """The pose of one shape at typical speaking loudness."""
    w = np.zeros(len(SHAPES), np.float32)
    w[SHAPES.index(shape)] = 1.0
    return pose(w, 0.6)
