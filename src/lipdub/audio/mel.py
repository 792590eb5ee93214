"""Wav2Lip's mel spectrogram and its per-video-frame 16-column windows, as the reference computes them."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from lipdub.media.audio import SAMPLE_RATE

N_FFT = 800
HOP = 200
WIN = 800
NUM_MELS = 80
FMIN, FMAX = 55, 7600
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20
MIN_LEVEL_DB = -100
MAX_ABS_VALUE = 4.0
MEL_STEP = 16  # mel columns per model window
MEL_FPS = SAMPLE_RATE / HOP  # 80 mel frames per second
# STFT frames transformed per FFT call (~13 s of audio): its float64 frames and complex spectrum are ~15 bytes per
# sample at once, so a whole minute in one call held ~70 MB for a moment, a long file proportionally more
STFT_BLOCK = 1024


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """Slaney-scale, area-normalised 80x401 filterbank: librosa.filters.mel's defaults (what the reference used),
    the same operations in numpy, equal to the bit (tests/test_mel.py); importing librosa for it loaded numba and
    scipy.signal, ~0.1 GiB resident for the whole run and seconds of start-up."""
    fft_freqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / SAMPLE_RATE)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), NUM_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((NUM_MELS, 1 + N_FFT // 2), dtype=np.float32)
    for i in range(NUM_MELS):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2: NUM_MELS + 2] - mel_f[:NUM_MELS]))[:, np.newaxis]
    return weights


_F_SP, _MIN_LOG_HZ, _LOGSTEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0  # Slaney's scale: linear below 1 kHz, log above
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP


def _hz_to_mel(f: float) -> float:
    return _MIN_LOG_MEL + np.log(f / _MIN_LOG_HZ) / _LOGSTEP if f >= _MIN_LOG_HZ else f / _F_SP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = _F_SP * mels
    log = mels >= _MIN_LOG_MEL
    freqs[log] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log] - _MIN_LOG_MEL))
    return freqs


@lru_cache(maxsize=4)
def _hann(win: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of `win` samples (scipy's `get_window('hann', fftbins=True)`), centred in n_fft."""
    window = np.zeros(n_fft)
    lead = (n_fft - win) // 2
    window[lead: lead + win] = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)
    return window


def stft_magnitude(y: np.ndarray, n_fft: int = N_FFT, hop: int = HOP, win: int | None = None,
                   pad_mode: str = "reflect") -> np.ndarray:
    """|STFT| (1 + n_fft // 2, T) float32 of centred frames, as librosa computes it (0.7's reflect padding by
    default; pad_mode="constant" is librosa 0.10's), without importing librosa (seconds of start-up)."""
    padded = np.pad(y, n_fft // 2, mode=pad_mode)
    n_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]  # (T, n_fft), a view
    window = _hann(win or n_fft, n_fft)
    magnitude = np.empty((n_frames, 1 + n_fft // 2), np.float32)
    for lo in range(0, n_frames, STFT_BLOCK):  # each frame's spectrum alone: the same numbers in bounded memory
        spec = np.fft.rfft(frames[lo:lo + STFT_BLOCK] * window, axis=1).astype(np.complex64)
        magnitude[lo:lo + STFT_BLOCK] = np.abs(spec)
    return magnitude.T


def preemphasis(wav: np.ndarray) -> np.ndarray:
    """y[n] = x[n] - PREEMPHASIS * x[n-1] in float64: scipy's `lfilter([1, -k], [1], x)` to the bit, without
    importing scipy.signal (~70 MB resident and a second of start-up for a one-tap filter)."""
    x = np.asarray(wav, np.float64)
    out = np.empty_like(x)
    out[0] = x[0]
    np.subtract(x[1:], PREEMPHASIS * x[:-1], out=out[1:])
    return out


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Normalised log-mel of 16 kHz mono float audio in [-1, 1]: (80, 1 + len(wav)//200) float32 in [-4, 4]."""
    wav = np.squeeze(np.asarray(wav, dtype=np.float32))
    if wav.ndim != 1:
        raise ValueError(f"melspectrogram expects mono audio, got shape {wav.shape}")
    if len(wav) < 2:
        raise ValueError("audio is too short for a mel spectrogram (needs at least 2 samples)")
    emphasised = preemphasis(wav)
    mel = _mel_basis() @ stft_magnitude(emphasised)  # (80, T) float32
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
    norm = 2 * MAX_ABS_VALUE * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(norm, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)


def chunk_starts(num_mel_frames: int, fps: float, n_frames: int | None = None) -> list[int]:
    """Start column of the 16-column mel window for each video frame.

    Without `n_frames`: the reference rule (frame i starts at int(80*i/fps); the first window that would run
    past the end is replaced by one at T-16 and ends the list, so the tail of the audio gets no frame).
    With `n_frames`: exactly that many starts, frame i at min(int(80*i/fps), T-16), so a video can cover all
    the audio; every frame the reference also produces gets the same start.
    """
    if num_mel_frames < MEL_STEP:
        raise ValueError(f"audio too short: {num_mel_frames} mel frames, need at least {MEL_STEP} (0.2 s)")
    step = 80.0 / fps
    last = num_mel_frames - MEL_STEP
    if n_frames is not None:
        return [min(int(i * step), last) for i in range(n_frames)]
    starts: list[int] = []
    i = 0
    while True:
        start = int(i * step)
        if start > last:
            starts.append(last)
            return starts
        starts.append(start)
        i += 1


def num_video_frames(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames at `fps` needed to cover `num_samples` of audio (ceil, at least 1)."""
    return max(1, math.ceil(num_samples * fps / sample_rate - 1e-9))


def mel_windows(mel: np.ndarray, starts: list[int] | np.ndarray) -> np.ndarray:
    """Stack the (80, 16) windows at `starts` into the model's audio input, shape (n, 1, 80, 16) float32."""
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) and (starts.min() < 0 or starts.max() + MEL_STEP > mel.shape[1]):
        raise ValueError(f"mel window start out of range 0..{mel.shape[1] - MEL_STEP}")
    cols = starts[:, None] + np.arange(MEL_STEP)[None, :]  # (n, 16)
    return np.ascontiguousarray(mel[:, cols].transpose(1, 0, 2)[:, None], dtype=np.float32)
