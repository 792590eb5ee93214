"""What a face does in every frame: head pose, blinks, brows and breath, planned from the speech it says.

The plan is a `Controls` record of per-frame curves, made once per face and deterministic for a seed:
- blinks: about 19 a minute (human talkers: 15-25), more likely at the end of a phrase and in pauses, each
  100-300 ms with a fast close, one frame fully shut and a slower opening; one in eight is a double blink;
- head: a slow random drift (calm in silence) plus nods on stressed syllables (loudness peaks) and at phrase
  ends, and small raises on pitch peaks; rotations scaled to about 1.5 degrees RMS, then low-passed and
  speed-limited so no frame jumps;
- brows: a lift on each pitch accent; breath: a slow rise and fall of the head in pauses over a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipdub.media.audio import SAMPLE_RATE

SR = SAMPLE_RATE  # the working rate (one home: lipdub.media.audio)
STYLES = ("none", "natural", "lively", "idle")


@dataclass(frozen=True)
class Style:
    """How much a style moves: head RMS (degrees) per axis, translation RMS (face heights), brow lift
    (face heights), blinks a minute. `idle` only blinks."""

    yaw: float
    pitch: float
    roll: float
    shift: float
    brow: float
    blinks_per_min: float
    breath: float


STYLE = {
    "natural": Style(yaw=1.5, pitch=1.3, roll=0.8, shift=0.006, brow=0.022, blinks_per_min=19.0, breath=0.004),
    "lively": Style(yaw=2.1, pitch=2.1, roll=1.2, shift=0.009, brow=0.035, blinks_per_min=21.0, breath=0.005),
    "idle": Style(yaw=0.0, pitch=0.0, roll=0.0, shift=0.0, brow=0.0, blinks_per_min=17.0, breath=0.0),
}
MAX_DEG_PER_S = 4.5  # fastest head rotation: 0.18 degrees a frame at 25 fps


@dataclass
class Controls:
    """Per-frame motion of one face: rotations (radians), shift and brow lift (face heights), blink closure
    (0 open .. 1 shut)."""

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    blink: np.ndarray
    brow: np.ndarray

    @classmethod
    def still(cls, n: int) -> Controls:
        return cls(*(np.zeros(n, np.float32) for _ in range(7)))


@dataclass
class Voice:
    """Speech features on the output timeline (frames): voice activity, loudness (0..1), pitch (semitones
    above the speaker's median, NaN where unvoiced)."""

    active: np.ndarray
    loud: np.ndarray
    pitch: np.ndarray

    @classmethod
    def silent(cls, n: int) -> Voice:
        return cls(np.zeros(n, np.float32), np.zeros(n, np.float32), np.full(n, np.nan, np.float32))


def voice_of(audio16k: np.ndarray, start_frame: int, fps: float, n: int) -> Voice:
    """Features of one speaker's audio placed at `start_frame` of an `n`-frame output."""
    from lipdub.audio import vad
    from lipdub.audio.cues import loudness_envelope

    audio = np.asarray(audio16k, np.float32).reshape(-1)
    m = int(np.ceil(len(audio) * fps / SR))
    active = vad.speech_probability(audio, fps)[:m]
    loud = loudness_envelope(audio, fps, m)
    f0, clarity = pitch_track(audio, fps, m)
    voiced = (active > 0.5) & (clarity > 0.45)
    semis = np.full(m, np.nan)
    if voiced.sum() > 3:
        semis[voiced] = 12 * np.log2(f0[voiced] / np.median(f0[voiced]))
    out = Voice.silent(n)
    for dst, src in ((out.active, active), (out.loud, loud), (out.pitch, semis)):
        a, b = max(start_frame, 0), min(start_frame + len(src), n)
        if b > a:
            dst[a:b] = src[a - start_frame: b - start_frame]
    return out


def pitch_track(audio16k: np.ndarray, fps: float, n: int, fmin: float = 65.0, fmax: float = 400.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: fundamental frequency (Hz) and clarity (normalised autocorrelation peak, 0..1) of a
    64 ms window around the frame's centre (the pitch accents only need a rough contour)."""
    win = 1024
    centres = np.minimum(((np.arange(n) + 0.5) * SR / fps).astype(np.int64), len(audio16k))
    padded = np.pad(np.asarray(audio16k, np.float32), (win // 2, win // 2 + 1))
    frames = padded[centres[:, None] + np.arange(win)[None]] * np.hanning(win).astype(np.float32)
    frames -= frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, 2 * win, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :win]
    lo, hi = int(SR / fmax), int(SR / fmin)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    clarity = ac[np.arange(n), lag] / np.maximum(ac[:, 0], 1e-9)
    return (SR / lag).astype(np.float64), np.clip(clarity, 0, 1)


# --------------------------------------------------------------------------------------------- events


def _peaks(x: np.ndarray, min_gap: int, threshold: float) -> np.ndarray:
    """Indices of local maxima above `threshold`, at least `min_gap` frames apart (strongest first)."""
    inner = np.flatnonzero((x[1:-1] >= x[:-2]) & (x[1:-1] > x[2:]) & (x[1:-1] > threshold)) + 1
    kept: list[int] = []
    for i in inner[np.argsort(-x[inner])]:
        if all(abs(i - k) >= min_gap for k in kept):
            kept.append(int(i))
    return np.array(sorted(kept), np.int64)


def _phrase_ends(active: np.ndarray, fps: float) -> np.ndarray:
    """Frames where speech stops for at least 0.25 s."""
    on = active > 0.5
    ends = np.flatnonzero(on[:-1] & ~on[1:]) + 1
    gap = int(round(0.25 * fps))
    return np.array([e for e in ends if not on[e:e + gap].any()], np.int64)


def _bump(n: int, at: np.ndarray, amp: np.ndarray, rise: float, fall: float, fps: float) -> np.ndarray:
    """Sum of smooth bumps (raised-cosine rise over `rise` s, fall over `fall` s) peaking at frames `at`."""
    out = np.zeros(n, np.float64)
    r, f = max(rise * fps, 1.0), max(fall * fps, 1.0)
    t = np.arange(n, dtype=np.float64)
    for i, a in zip(at, amp, strict=True):
        d = t - i
        up = (d > -r) & (d <= 0)
        down = (d > 0) & (d < f)
        out[up] += a * 0.5 * (1 + np.cos(np.pi * d[up] / r))
        out[down] += a * 0.5 * (1 + np.cos(np.pi * d[down] / f))
    return out


def _drift(rng: np.random.Generator, n: int, fps: float, period: float) -> np.ndarray:
    """Smooth random wandering with a typical period of `period` seconds, unit RMS."""
    knots = max(3, int(np.ceil(n / (period * fps / 2))) + 3)
    values = rng.standard_normal(knots)
    x = np.arange(n) / (period * fps / 2)
    out = np.interp(x, np.arange(knots), values)
    out = _smooth(out, period * fps / 6)
    return out / max(float(np.sqrt(np.mean(out ** 2))), 1e-6)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.5 or len(x) < 2:
        return np.asarray(x, np.float64)
    from lipdub.media.filters import gaussian_filter1d

    return gaussian_filter1d(np.asarray(x, np.float64), sigma, mode="nearest")


def _limit_speed(x: np.ndarray, max_step: float) -> np.ndarray:
    """The curve with every frame-to-frame step clipped to `max_step` (integrated back, same mean)."""
    if len(x) < 2:
        return x
    steps = np.clip(np.diff(x), -max_step, max_step)
    out = np.concatenate([[x[0]], x[0] + np.cumsum(steps)])
    return out - out.mean() + x.mean()


# --------------------------------------------------------------------------------------------- blinks


def blink_curve(rng: np.random.Generator, fps: float) -> np.ndarray:
    """One blink sampled at the frame rate: a fast close ending on a fully shut frame, a slower opening.
    100-300 ms from the first moving frame to the last."""
    total = rng.uniform(0.13, 0.28)
    close = max(1, int(round(0.33 * total * fps)))
    opening = max(2, int(round(0.67 * total * fps)))
    up = [np.sin(0.5 * np.pi * k / close) ** 1.5 for k in range(1, close + 1)]
    down = [0.5 * (1 + np.cos(np.pi * k / (opening + 1))) for k in range(1, opening + 1)]
    return np.array(up + down, np.float32)  # up ends at exactly 1.0: the shut frame


def plan_blinks(rng: np.random.Generator, voice: Voice, fps: float, per_min: float) -> np.ndarray:
    """Closure (0 open .. 1 shut) per frame. Over 20 s or more the count stays within 15 % of `per_min` (a
    draw outside that is drawn again: people vary, but each keeps a steady rate)."""
    minutes = len(voice.active) / fps / 60
    for _ in range(20):
        out = _blinks_once(rng, voice, fps, per_min)
        shut = out >= 0.99
        count = int(shut[0]) + int(np.sum(shut[1:] & ~shut[:-1]))
        if minutes < 1 / 3 or abs(count / minutes - per_min) <= 0.15 * per_min:
            break
    return out


def _blinks_once(rng: np.random.Generator, voice: Voice, fps: float, per_min: float) -> np.ndarray:
    n = len(voice.active)
    out = np.zeros(n, np.float32)
    if n == 0 or per_min <= 0:
        return out
    mean_gap = 60.0 / per_min
    ends = set(_phrase_ends(voice.active, fps).tolist())
    t = rng.uniform(0.3, 0.8) * mean_gap * fps
    i = 0
    while i < n:
        gap = rng.gamma(6.0, mean_gap / 6.0) * fps
        nxt = int(t + gap) if i else int(t)
        # a phrase end in the next stretch pulls the blink to just after it (people blink as they pause)
        near = [e for e in ends if i + 0.5 * gap < e + 3 <= nxt + 0.4 * gap]
        if near and rng.random() < 0.7:
            nxt = near[0] + int(rng.integers(1, max(2, int(0.3 * fps))))
        if nxt >= n:
            break
        curve = blink_curve(rng, fps)
        if rng.random() < 0.12:  # a double blink: a second one after a frame or two of open eye
            curve = np.concatenate([curve, np.zeros(int(rng.integers(2, 4)), np.float32), blink_curve(rng, fps)])
        seg = out[nxt:nxt + len(curve)]
        np.maximum(seg, curve[: len(seg)], out=seg)
        i = t = nxt + len(curve)
    return out


# --------------------------------------------------------------------------------------------- head, brows


def plan_face(voice: Voice, fps: float, style: str, seed: int) -> Controls:
    """Every control curve of one face for the whole output (zeros for `none`)."""
    n = len(voice.active)
    if style == "none" or n == 0:
        return Controls.still(n)
    s = STYLE[style]
    rng = np.random.default_rng(seed)
    c = Controls.still(n)
    c.blink = plan_blinks(rng, voice, fps, s.blinks_per_min)
    if style == "idle":
        return c
    talk = _smooth((voice.active > 0.5).astype(np.float64), 0.4 * fps)
    calm = 0.35 + 0.65 * talk  # silence: a third of the motion
    loud = _smooth(voice.loud * (voice.active > 0.5), 1.0)
    stress = _peaks(loud, int(0.25 * fps), 0.45)
    pitch = np.nan_to_num(_smooth(np.nan_to_num(voice.pitch, nan=0.0), 1.0), nan=0.0)
    accents = _peaks(pitch * (voice.active > 0.5), int(0.4 * fps), 1.5)
    ends = _phrase_ends(voice.active, fps)
    nod = (_bump(n, stress, loud[stress] * rng.uniform(0.6, 1.0, len(stress)), 0.12, 0.35, fps)
           + _bump(n, ends, rng.uniform(0.7, 1.2, len(ends)), 0.2, 0.5, fps))
    raise_ = _bump(n, accents, np.clip(pitch[accents] / 4, 0.3, 1.0), 0.15, 0.45, fps)
    curves = {
        "pitch": calm * _drift(rng, n, fps, 4.0) + 1.6 * nod - 0.8 * raise_,
        "yaw": calm * _drift(rng, n, fps, 5.0) + 0.4 * _bump(n, stress, rng.normal(0, 1, len(stress)), 0.15, 0.4,
                                                             fps),
        "roll": calm * _drift(rng, n, fps, 6.0),
    }
    max_step = np.radians(MAX_DEG_PER_S) / fps
    for name, curve in curves.items():
        curve = _smooth(curve - curve.mean(), 0.06 * fps)
        rms = float(np.sqrt(np.mean(curve ** 2))) or 1.0
        target = np.radians(getattr(s, name))
        curve = _limit_speed(curve * target / rms, max_step)
        curve *= min(1.0, target / max(float(np.sqrt(np.mean(curve ** 2))), 1e-9))
        setattr(c, name, curve.astype(np.float32))
    pause = _smooth((voice.active < 0.5).astype(np.float64), 0.5 * fps)
    breath = pause * np.sin(2 * np.pi * np.arange(n) / (3.6 * fps))  # a breath every 3.6 s while silent
    c.tx = (s.shift * calm * _drift(rng, n, fps, 5.0)).astype(np.float32)
    c.ty = (s.shift * 0.6 * calm * _drift(rng, n, fps, 4.0) - s.breath * breath).astype(np.float32)
    lift = np.clip(_bump(n, accents, np.clip(pitch[accents] / 3, 0.4, 1.0), 0.12, 0.5, fps), 0, 1)
    c.brow = (s.brow * lift).astype(np.float32)
    return c
