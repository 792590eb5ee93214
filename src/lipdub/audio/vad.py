"""Voice activity: silero-vad speech probability per video frame and speech segments in seconds.

The model ships inside the `silero_vad` wheel (TorchScript file), so nothing is downloaded. Long audio is cut
into blocks that run side by side as one batch (each block starts with a short pre-roll from the audio before
it so the recurrent state has settled), which makes a minute of audio take well under a second on one core.
"""

from __future__ import annotations

import threading
import zlib
from functools import lru_cache

import numpy as np

from lipdub.media.audio import SAMPLE_RATE

CHUNK = 512  # samples per silero step at 16 kHz (32 ms)
HOP_S = CHUNK / SAMPLE_RATE
_BLOCK = 250  # chunks per batched block (8 s)
_PREROLL = 62  # chunks of pre-roll per block (~2 s), outputs discarded
_lock = threading.Lock()
_recent: dict[tuple[int, int], np.ndarray] = {}


@lru_cache(maxsize=1)
def _model():
    """Load the packaged silero-vad TorchScript model once per process (no network access)."""
    import torch

    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # importing silero_vad sets torch to 1 thread; undo that

    model = load_silero_vad(onnx=False)
    torch.set_num_threads(threads)
    return model


def chunk_probabilities(wav16k: np.ndarray) -> np.ndarray:
    """Speech probability for each 32 ms chunk of 16 kHz mono audio: `(ceil(n / 512),)` float32 in [0, 1].

    The last few results are remembered (keyed by a checksum of the samples), so the stages that all ask
    about the same speech (cues, engine, mixing) run the model once."""
    wav = np.ascontiguousarray(np.asarray(wav16k, dtype=np.float32).reshape(-1))
    key = (len(wav), zlib.crc32(wav.data))
    with _lock:
        hit = _recent.get(key)
    if hit is not None:
        return hit.copy()
    probs = _run_model(wav)
    with _lock:
        _recent[key] = probs
        while len(_recent) > 4:
            _recent.pop(next(iter(_recent)))
    return probs.copy()


def _run_model(wav: np.ndarray) -> np.ndarray:
    """silero-vad over the audio, cut into blocks that run side by side as one batch."""
    import torch

    n_chunks = int(np.ceil(len(wav) / CHUNK))
    if n_chunks == 0:
        return np.zeros(0, np.float32)
    wav = np.nan_to_num(np.clip(wav, -1.0, 1.0))
    chunks = np.zeros((n_chunks, CHUNK), np.float32)
    chunks.reshape(-1)[: len(wav)] = wav
    n_blocks = int(np.ceil(n_chunks / _BLOCK))
    block = int(np.ceil(n_chunks / n_blocks))
    preroll = _PREROLL if n_blocks > 1 else 0
    steps = preroll + block
    batch = np.zeros((n_blocks, steps, CHUNK), np.float32)
    for b in range(n_blocks):
        lo = b * block - preroll
        src = chunks[max(lo, 0): min(lo + steps, n_chunks)]
        start = max(0, -lo)
        batch[b, start: start + len(src)] = src
    out = np.zeros((n_blocks, steps), np.float32)
    model = _model()
    with _lock, torch.inference_mode():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # each step is tiny: more threads only add synchronisation
        try:
            model.reset_states()  # re-sized to the batch on the first call
            x = torch.from_numpy(batch)
            for t in range(steps):
                out[:, t] = model(x[:, t], SAMPLE_RATE).reshape(-1).numpy()
            model.reset_states()
        finally:
            torch.set_num_threads(threads)
    return out[:, preroll:].reshape(-1)[:n_chunks].copy()


def speech_probability(wav16k: np.ndarray, fps: float) -> np.ndarray:
    """Mean speech probability over each video frame at `fps`: `(ceil(len * fps / 16000),)` float32."""
    n_frames = int(np.ceil(len(wav16k) * fps / SAMPLE_RATE))
    probs = chunk_probabilities(wav16k)
    if n_frames == 0:
        return np.zeros(0, np.float32)
    # integrate the step function of chunk probabilities over each frame interval
    edges = np.arange(n_frames + 1) / fps
    cum = np.concatenate([[0.0], np.cumsum(probs, dtype=np.float64) * HOP_S])
    chunk_edges = np.arange(len(probs) + 1) * HOP_S
    area = np.interp(edges, chunk_edges, cum)
    return np.clip(np.diff(area) * fps, 0.0, 1.0).astype(np.float32)


def speech_segments(wav16k: np.ndarray, min_silence: float = 0.3, pad: float = 0.05, threshold: float = 0.5,
                    min_speech: float = 0.1) -> list[tuple[float, float]]:
    """Speech as `[(start_s, end_s)]`: hysteresis on silero's probability, gaps < `min_silence` merged,
    bursts < `min_speech` dropped, each segment padded by `pad` seconds (clipped to the audio)."""
    probs = chunk_probabilities(wav16k)
    duration = len(wav16k) / SAMPLE_RATE
    segments: list[list[float]] = []
    low = max(threshold - 0.15, 0.01)
    start = None
    for i, p in enumerate(probs):
        if start is None and p >= threshold:
            start = i
        elif start is not None and p < low:
            segments.append([start * HOP_S, i * HOP_S])
            start = None
    if start is not None:
        segments.append([start * HOP_S, len(probs) * HOP_S])
    merged: list[list[float]] = []
    for seg in segments:
        if merged and seg[0] - merged[-1][1] < min_silence:
            merged[-1][1] = seg[1]
        else:
            merged.append(seg)
    return [(max(0.0, s - pad), min(duration, e + pad)) for s, e in merged if e - s >= min_speech]
