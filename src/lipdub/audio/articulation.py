"""How strongly the mouth articulates, read from the acoustics alone (JALI's jaw/lip field, any language).

Per 10 ms frame: loudness of the voiced band (250-2500 Hz) relative to the speech peak, the spectral centroid
of the first formant's region (200-1500 Hz), and the first two formants from linear prediction (LPC order 10
on 10 kHz audio). The jaw opens with loud voiced sound and with F1 (F1 rises as the jaw drops: /a/ ~750 Hz,
/i/ /u/ ~300 Hz), read both ways: the LPC root and the low band's centroid err differently, so their mean
follows real mouths better than either; the lips round where F2 falls low for the speaker (/o/ /u/ lower F2
by lengthening the vocal tract). None of it needs to know the language.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipdub.media.audio import SAMPLE_RATE

SR = SAMPLE_RATE  # the working rate (one home: lipdub.media.audio)
HOP_S = 0.01
LPC_SR, LPC_ORDER, LPC_WIN = 10000, 10, 250  # 25 ms analysis windows at 10 kHz
F1_RANGE = (250.0, 850.0)  # closed to open vowels (adult speakers)
LOW_BAND = (200.0, 1500.0)  # the F1 region whose centroid is the second reading of the jaw
CENTROID_RANGE = (350.0, 850.0)  # its centroid from closed to open vowels
LEAD_S = 0.06  # the jaw moves ahead of the sound it shapes
JAW_SMOOTH_S = 0.04  # std. dev. of the jaw's easing


@dataclass
class Acoustics:
    """Per-10-ms measurements of speech."""

    loud: np.ndarray  # voiced-band loudness, 0 (35 dB under the peak) .. 1 (the peak)
    f1: np.ndarray  # Hz, 0 where no formant was found
    f2: np.ndarray
    centroid: np.ndarray  # Hz, spectral centroid of LOW_BAND


def analyse(wav16k: np.ndarray) -> Acoustics:
    """Loudness and formants every 10 ms."""
    wav = np.asarray(wav16k, np.float32).reshape(-1)
    n = int(np.ceil(len(wav) / (SR * HOP_S))) + 1
    if len(wav) < 400:
        return Acoustics(*(np.zeros(n, np.float32) for _ in range(4)))
    db, centroid = bands(wav)
    loud = loudness(db, float(np.percentile(db, 95)))
    f1, f2 = formants(wav, loud > 0.25)  # quiet frames have no formants worth the time
    m = min(len(loud), len(f1))
    return Acoustics(loud[:m].astype(np.float32), f1[:m], f2[:m], centroid[:m])


def bands(wav16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every 10 ms (25 ms windows centred on each hop): voiced-band (250-2500 Hz) energy in dB, and the
    spectral centroid (Hz) of LOW_BAND."""
    from lipdub.audio.mel import stft_magnitude  # librosa.stft's result without librosa's seconds of import

    spec = stft_magnitude(np.asarray(wav16k, np.float32), n_fft=512, hop=160, win=400, pad_mode="constant") ** 2
    freqs = np.fft.rfftfreq(512, 1 / SR)
    db = 10 * np.log10(spec[(freqs >= 250) & (freqs < 2500)].sum(axis=0) + 1e-10)
    low = (freqs >= LOW_BAND[0]) & (freqs < LOW_BAND[1])
    centroid = freqs[low] @ spec[low] / (spec[low].sum(axis=0) + 1e-10)
    return db, centroid.astype(np.float32)


def loudness(db: np.ndarray, peak_db: float) -> np.ndarray:
    """0 (35 dB under the speech peak) .. 1 (the peak); a live stream passes its running peak."""
    return np.clip((np.asarray(db) - (peak_db - 35.0)) / 35.0, 0.0, 1.0)


def formants(wav16k: np.ndarray, where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """F1, F2 (Hz) per 10 ms from the roots of an LPC polynomial (Levinson-Durbin, all frames at once);
    `where`: only these frames (the rest stay 0)."""
    import soxr

    wav = soxr.resample(np.asarray(wav16k, np.float32), SR, LPC_SR)
    wav = np.append(wav[0], wav[1:] - 0.97 * wav[:-1])  # pre-emphasis: flatten the spectral tilt
    hop = int(LPC_SR * HOP_S)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(wav, LPC_WIN // 2), LPC_WIN)[::hop]
    f1, f2 = np.zeros(len(frames), np.float32), np.zeros(len(frames), np.float32)
    pick = np.ones(len(frames), bool) if where is None else np.resize(np.asarray(where, bool), len(frames))
    frames = frames[pick] * np.hamming(LPC_WIN)
    r = np.stack([np.einsum("nt,nt->n", frames[:, : LPC_WIN - k], frames[:, k:]) for k in range(LPC_ORDER + 1)], 1)
    a = _levinson(r)
    comp = np.zeros((len(a), LPC_ORDER, LPC_ORDER))  # companion matrices: their eigenvalues are the roots
    comp[:, 0, :] = -a[:, 1:]
    comp[:, np.arange(1, LPC_ORDER), np.arange(LPC_ORDER - 1)] = 1.0
    ok = np.isfinite(comp).all(axis=(1, 2)) & (r[:, 0] > 1e-9)
    comp[~ok] = 0.0
    roots = np.linalg.eigvals(comp)
    hz = np.angle(roots) * LPC_SR / (2 * np.pi)
    bw = -np.log(np.maximum(np.abs(roots), 1e-9)) * LPC_SR / np.pi
    valid = (np.imag(roots) > 0) & (hz > 200) & (hz < 4000) & (bw < 500) & ok[:, None]
    hz = np.sort(np.where(valid, hz, np.inf), axis=1)
    f1[pick], f2[pick] = np.where(np.isfinite(hz[:, :2]), hz[:, :2], 0).T
    return f1, f2


def _levinson(r: np.ndarray) -> np.ndarray:
    """LPC coefficients (frames, order + 1) from autocorrelations (frames, order + 1)."""
    n, p = r.shape[0], r.shape[1] - 1
    a = np.zeros((n, p + 1))
    a[:, 0] = 1.0
    err = r[:, 0] + 1e-9
    for i in range(1, p + 1):
        k = -(r[:, i] + np.einsum("nj,nj->n", a[:, 1:i], r[:, i - 1:0:-1])) / err
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1:0:-1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    return a


def jaw_opening(ac: Acoustics) -> np.ndarray:
    """Per 10 ms, 0 (closed) .. 1 (wide open): how high F1 is wherever there is voiced sound (the mean of the
    LPC formant's and the low band centroid's readings), smoothed like the slow articulator the jaw is
    (loudness beyond the voicing gate added nothing on real speakers)."""
    from lipdub.media.filters import gaussian_filter1d, median_filter

    voiced = np.clip((ac.loud - 0.15) / 0.1, 0.0, 1.0)
    readings = [(median_filter(x, 5) - lo) / (hi - lo) for x, (lo, hi) in ((ac.f1, F1_RANGE),
                                                                           (ac.centroid, CENTROID_RANGE))]
    height = np.mean(np.clip(readings, 0.0, 1.0), axis=0)
    return gaussian_filter1d(voiced * height, JAW_SMOOTH_S / HOP_S).astype(np.float32)


def lip_rounding(ac: Acoustics) -> np.ndarray:
    """Per 10 ms, 0 .. 1: how far F2 sits below the speaker's own range on loud voiced sound (/o/, /u/)."""
    from lipdub.media.filters import gaussian_filter1d, median_filter

    voiced = ac.loud > 0.45
    f2 = median_filter(ac.f2, 5)
    if voiced.sum() < 10:
        return np.zeros(len(ac.f2), np.float32)
    lo, hi = np.percentile(f2[voiced & (f2 > 0)], [10, 90]) if (voiced & (f2 > 0)).sum() >= 10 else (900, 2000)
    low = np.clip((lo + 0.3 * (hi - lo) - f2) / max(0.3 * (hi - lo), 50.0), 0.0, 1.0) * voiced * (f2 > 0)
    return gaussian_filter1d(low.astype(np.float32), 2.0)


def per_frame(curve: np.ndarray, fps: float, n_frames: int, lead: float = LEAD_S) -> np.ndarray:
    """Average a 10 ms curve (value k centred at k * 10 ms) over each video frame's time span, centred on the
    frame's time i / fps (when the camera saw it), `lead` seconds early (articulators anticipate sound)."""
    if len(curve) == 0:
        return np.zeros(n_frames, np.float32)
    cum = np.concatenate([[0.0], np.cumsum(curve)])  # cum[j]: the sum up to (j - 0.5) * 10 ms
    edges = ((np.arange(n_frames + 1) - 0.5) / fps + lead) / HOP_S + 0.5
    at = np.interp(edges, np.arange(len(cum)), cum, left=0.0, right=cum[-1])
    width = np.maximum(np.diff(edges), 1e-9)
    return np.clip(np.diff(at) / width, 0.0, 1.0).astype(np.float32)


__all__ = ["Acoustics", "analyse", "bands", "formants", "loudness", "jaw_opening", "lip_rounding", "per_frame"]
