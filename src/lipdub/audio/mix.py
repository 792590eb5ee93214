"""Build the output soundtrack: new speech tracks on the timeline over the (ducked) original, true-peak limited.

Decisions (documented for the CLI and web help):

- Output rate: the highest input rate, capped at 48 kHz (so the original's rate whenever it is the best
  source; speech-only output keeps the speech's own rate). Output channels: the original's (a surround
  original is folded to stereo), else the widest speech track's, at most stereo. Mono speech goes equally
  into both channels of a stereo mix (centred). Resampling uses soxr (very high quality).
- Length: exactly ``round(duration * rate)`` samples starting at t = 0; speech that runs past it is cut,
  a shorter original is padded with silence.
- Ducking lowers only the original, by ``duck_db``, while any new speech is active. Activity comes from
  each track's ``segments`` or from voice activity detection; pauses shorter than ``hold`` stay ducked
  (no pumping between words); the gain moves along raised-cosine ramps in dB (``attack`` long, starting
  ``lookahead`` s before the speech; ``release`` long, after it).
- Loudness: levels are kept as given (plus ``gain_db``) unless ``speech_loudness`` asks to normalise the
  speech (ITU-R BS.1770 with pyloudnorm) to a LUFS target or to the original's integrated loudness.
- Limiter: a look-ahead limiter on 4x oversampled (true) peaks keeps the mix at or below ``ceiling_dbtp``;
  its gain is never above 1, so audio already below the ceiling passes unchanged, bit for bit. The ceiling
  holds as a BS.1770-style 4x meter reads it; content close to Nyquist can read up to ~0.5 dB higher on
  finer meters (speech and music mixes: < 0.1 dB).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import soxr

from lipdub.media.audio import SAMPLE_RATE, as_planar, to_channels

Segments = list[tuple[float, float]]
# speech_activity(mono float32 audio, rate) -> speech spans in seconds from the audio's start
SpeechActivity = Callable[[np.ndarray, int], Segments]

MAX_RATE = 48000
_CHUNK = 1 << 18  # samples per processing chunk: bounds temporary memory on long soundtracks


@dataclass
class SpeechTrack:
    """One new speech track: `audio` (n,) or (channels, n) at `rate`, placed `start` s into the output."""

    audio: np.ndarray
    rate: int
    start: float = 0.0
    gain_db: float = 0.0
    segments: Segments | None = None  # speech spans (s, from the track's start); None -> detected

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.rate


def mix_soundtrack(
    speech: Sequence[SpeechTrack],
    original: tuple[np.ndarray, int] | None = None,
    *,
    duration: float,
    out_rate: int | None = None,
    out_channels: int | None = None,
    duck_db: float = 0.0,
    attack: float = 0.05,
    release: float = 0.3,
    lookahead: float = 0.1,
    hold: float = 0.4,
    original_gain_db: float = 0.0,
    speech_loudness: float | Literal["original"] | None = None,
    limiter: bool = True,
    ceiling_dbtp: float = -1.0,
    speech_activity: SpeechActivity | None = None,
) -> tuple[np.ndarray, int]:
    """Mix `speech` over `original` (audio (channels, n) or (n,), rate) into exactly `duration` seconds.

    `duck_db` >= 0 is how many dB the original drops under speech; the drop starts `lookahead` s before a
    detected speech onset and is complete `attack` s later (the default leaves 50 ms for VAD onset error).
    Returns (audio (channels, n) float32, rate).
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if duck_db < 0:
        raise ValueError(f"duck_db is an attenuation in dB and must be >= 0, got {duck_db}")
    orig = None if original is None else (as_planar(original[0], dtype=None), int(original[1]))
    rate = out_rate or _output_rate([t.rate for t in speech] + ([orig[1]] if orig else []))
    channels = out_channels or _output_channels(orig[0].shape[0] if orig else None,
                                                [as_planar(t.audio, dtype=None).shape[0] for t in speech])
    out = np.zeros((channels, int(round(duration * rate))), np.float32)

    if orig is not None:  # the bed first, ducked in place, so no second full-length buffer is needed
        _place_original(out, *orig, rate, db_to_gain(original_gain_db))
        if duck_db > 0 and speech:
            spans = merge_segments(_timeline_segments(speech, speech_activity), hold)
            _apply_ducking(out, rate, spans, duck_db, attack, release, lookahead)

    target = _loudness_target(speech_loudness, orig)
    for track in speech:
        _add_track(out, rate, track, target)

    if limiter:
        out = true_peak_limit(out, rate, ceiling_dbtp=ceiling_dbtp, in_place=True)
    return out, rate


# --- levels -------------------------------------------------------------------------------------------


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    """ITU-R BS.1770 integrated loudness (LUFS) of `audio` (channels, n); -inf if too short or silent."""
    import pyloudnorm

    x = as_planar(audio, dtype=None)
    if x.shape[1] < int(0.4 * rate) + 1:
        return float("-inf")
    return float(pyloudnorm.Meter(rate).integrated_loudness(x.T.astype(np.float64)))


def true_peak_limit(audio: np.ndarray, rate: int, *, ceiling_dbtp: float = -1.0, lookahead: float = 0.005,
                    release: float = 0.1, oversample: int = 4, block: int = 16, in_place: bool = False) -> np.ndarray:
    """Look-ahead limiter on true peaks: output true peak <= `ceiling_dbtp`, gain never above 1.

    The gain ramps down (raised over `lookahead` s, so it is smooth) before each over and comes back at
    6 dB per `release` s. Gain is computed per `block` samples with a margin that holds between blocks.
    Audio whose true peak is already below the ceiling is returned unchanged. `in_place` reuses a float32
    (channels, n) input as the output.
    """
    x = as_planar(audio)
    peaks = _block_true_peaks(x, block, oversample)
    with np.errstate(divide="ignore"):
        over = 20.0 * np.log10(np.maximum(peaks, 1e-12)) - (ceiling_dbtp - 0.05)  # 0.05 dB safety margin
    if not (over > 0).any():
        return x
    att = np.maximum(over, 0.0)
    att = _window_max(att, 1, 1)  # neighbours too: makes linear interpolation between blocks safe
    block_s = block / rate
    steps = np.arange(att.size) * (6.0 * block_s / release)  # release: 6 dB per `release` s
    att = np.maximum.accumulate(att + steps) - steps
    la = max(1, int(np.ceil(lookahead / block_s)))
    att = _window_max(att, 0, la)  # start before the over ...
    att = np.convolve(np.pad(att, (la, 0), mode="edge"), np.full(la + 1, 1 / (la + 1)), "valid")  # ... smoothly
    centres = (np.arange(att.size) + 0.5) * block - 0.5
    out = x if in_place else np.empty_like(x)
    for a in range(0, x.shape[1], _CHUNK):
        b = min(a + _CHUNK, x.shape[1])
        gain = 10.0 ** (-np.interp(np.arange(a, b), centres, att) / 20.0)
        np.multiply(x[:, a:b], gain.astype(np.float32), out=out[:, a:b])
    return out


def _window_max(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """max(x[k - before .. k + after]) for every k."""
    padded = np.pad(x, (before, after))
    return np.lib.stride_tricks.sliding_window_view(padded, before + after + 1).max(axis=1)


def _block_true_peaks(x: np.ndarray, block: int, oversample: int) -> np.ndarray:
    """Max |sample| over channels and `oversample`x interpolated points (soxr, linear phase), per `block`."""
    n = x.shape[1]
    pad = 256  # > soxr's filter reach in input samples at this ratio: chunk edges are exact
    peaks = np.zeros(-(-n // block))
    step = _CHUNK - _CHUNK % block
    for a in range(0, n, step):
        b = min(a + step, n)
        lo, hi = max(0, a - pad), min(n, b + pad)
        seg = np.pad(x[:, lo:hi], ((0, 0), (pad - (a - lo), pad - (hi - b)))).T
        up = soxr.resample(np.ascontiguousarray(seg, np.float32), 1, oversample, quality="HQ")
        m, nb = b - a, -(-(b - a) // block)
        up = up[pad * oversample:(pad + m) * oversample]  # (m * oversample, channels), contiguous
        samples = np.abs(x[:, a:b])
        if m % block:  # only the last chunk ends inside a block
            up = np.pad(up, ((0, (nb * block - m) * oversample), (0, 0)))
            samples = np.pad(samples, ((0, 0), (0, nb * block - m)))
        inter = np.maximum(up.reshape(nb, -1).max(axis=1), -up.reshape(nb, -1).min(axis=1))
        peaks[a // block: a // block + nb] = np.maximum(inter, samples.reshape(-1, nb, block).max(axis=(0, 2)))
    return peaks


def _loudness_target(speech_loudness: float | str | None, orig: tuple[np.ndarray, int] | None) -> float | None:
    if speech_loudness is None or not isinstance(speech_loudness, str):
        return speech_loudness
    if speech_loudness != "original":
        raise ValueError(f"speech_loudness must be LUFS, 'original' or None, got {speech_loudness!r}")
    level = integrated_loudness(*orig) if orig is not None else float("-inf")
    return level if np.isfinite(level) else -16.0


# --- placing speech -----------------------------------------------------------------------------------


def _place_original(out: np.ndarray, audio: np.ndarray, rate: int, out_rate: int, gain: float) -> None:
    """Write `audio` into `out` from t = 0 at the output's rate and channels, times `gain`, chunk by chunk."""
    n, channels, g = out.shape[1], out.shape[0], np.float32(gain)
    if rate == out_rate:
        for a in range(0, min(n, audio.shape[1]), _CHUNK):
            b = min(a + _CHUNK, n, audio.shape[1])
            out[:, a:b] = to_channels(audio[:, a:b], channels) * g
        return
    stream = soxr.ResampleStream(rate, out_rate, channels, dtype="float32", quality="VHQ")
    pos = 0
    for a in range(0, audio.shape[1], _CHUNK):
        chunk = to_channels(audio[:, a:a + _CHUNK], channels)
        y = stream.resample_chunk(np.ascontiguousarray(chunk.T), last=a + _CHUNK >= audio.shape[1])
        k = min(len(y), n - pos)
        if k > 0:
            out[:, pos:pos + k] = y[:k].T * g
        pos += len(y)
        if pos >= n:
            return


def _add_track(out: np.ndarray, rate: int, track: SpeechTrack, loudness: float | None) -> None:
    """Add `track` into `out` at its start, at the output's rate and channel count."""
    if track.start < 0:
        raise ValueError(f"speech start must be >= 0, got {track.start}")
    x = to_channels(as_planar(track.audio), out.shape[0])
    gain_db = track.gain_db
    if loudness is not None:  # measured as it will be heard: in the output's channels
        level = integrated_loudness(x, track.rate)
        if np.isfinite(level):
            gain_db += loudness - level
    x = _resample(x, track.rate, rate)
    a = int(round(track.start * rate))
    b = min(out.shape[1], a + x.shape[1])
    if b > a:
        out[:, a:b] += x[:, : b - a] * np.float32(db_to_gain(gain_db))


def _output_rate(rates: Sequence[int]) -> int:
    if not rates:
        raise ValueError("nothing to mix: no speech and no original")
    return min(max(rates), MAX_RATE)


def _output_channels(original: int | None, speech: Sequence[int]) -> int:
    return min(original if original is not None else max(speech, default=1), 2)


def _resample(x: np.ndarray, rate: int, out_rate: int) -> np.ndarray:
    """(channels, n) float32 at `rate` -> (channels, round(n * out_rate / rate)) float32 (soxr VHQ)."""
    x = x.astype(np.float32, copy=False)
    if rate == out_rate:
        return x.copy()
    y = soxr.resample(np.ascontiguousarray(x.T), rate, out_rate, quality="VHQ")
    return np.ascontiguousarray(y.T)


# --- ducking ------------------------------------------------------------------------------------------


def _timeline_segments(speech: Sequence[SpeechTrack], activity: SpeechActivity | None) -> Segments:
    """Speech spans of all tracks on the output timeline (seconds), sorted, possibly overlapping."""
    detect = activity or speech_segments
    spans: Segments = []
    for t in speech:
        segs = t.segments if t.segments is not None else detect(as_planar(t.audio, dtype=None).mean(axis=0), t.rate)
        spans += [(t.start + s, t.start + e) for s, e in segs if e > s]
    return sorted(spans)


def merge_segments(spans: Sequence[tuple[float, float]], hold: float) -> Segments:
    """Union of `spans`, also joining spans separated by less than `hold` seconds."""
    merged: Segments = []
    for s, e in sorted(spans):
        if merged and s - merged[-1][1] < hold:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def duck_gain_db(t: np.ndarray, spans: Segments, duck_db: float, attack: float, release: float,
                 lookahead: float) -> np.ndarray:
    """Gain (dB, <= 0) of the original at times `t` (s): -duck_db inside `spans`, raised-cosine ramps around."""
    if not spans:
        return np.zeros_like(t, dtype=np.float64)
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    k = np.searchsorted(starts, t, side="right")  # spans[k-1] starts at or before t; spans[k] after
    inside = np.zeros(t.shape, bool)
    has_prev = k > 0
    inside[has_prev] = t[has_prev] <= ends[k[has_prev] - 1]
    depth = inside.astype(np.float64)
    nxt = k < len(spans)  # attack towards the next span: 0 at start-lookahead, 1 at start-lookahead+attack
    u = (t[nxt] - (starts[k[nxt]] - lookahead)) / max(attack, 1e-9)
    depth[nxt] = np.maximum(depth[nxt], _raised_cosine(u))
    prev = has_prev & ~inside  # release after the previous span
    u = 1.0 - (t[prev] - ends[k[prev] - 1]) / max(release, 1e-9)
    depth[prev] = np.maximum(depth[prev], _raised_cosine(u))
    return -duck_db * depth


def _raised_cosine(u: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))


def _apply_ducking(bed: np.ndarray, rate: int, spans: Segments, duck_db: float, attack: float,
                   release: float, lookahead: float) -> None:
    """Multiply `bed` (channels, n) in place by the ducking gain."""
    for a in range(0, bed.shape[1], _CHUNK):
        t = np.arange(a, min(a + _CHUNK, bed.shape[1])) / rate
        gain = 10.0 ** (duck_gain_db(t, spans, duck_db, attack, release, lookahead) / 20.0)
        bed[:, a:a + t.size] *= gain.astype(np.float32)


# --- speech activity ----------------------------------------------------------------------------------


def speech_segments(audio: np.ndarray, rate: int) -> Segments:
    """Speech spans (s) of mono `audio` at `rate`, by silero VAD (lipdub.audio.vad) at 16 kHz."""
    from lipdub.audio import vad

    wav16k = _resample(as_planar(audio), rate, SAMPLE_RATE)[0] if rate != SAMPLE_RATE else np.asarray(audio, np.float32)
    return [(float(s), float(e)) for s, e in vad.speech_segments(wav16k)]
