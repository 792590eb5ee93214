"""Voice activity: silero-vad speech probability per video frame and speech segments in seconds.

The model ships inside the `silero_vad` wheel (its ONNX "sequence" export, run by ONNX Runtime without torch, so
a viseme run never loads torch): nothing is downloaded. Long audio is cut into blocks, each one model call that
starts with a short pre-roll from the audio before it so the recurrent state has settled; a minute of audio takes
well under a second on one core.
"""

from __future__ import annotations

import importlib.util
import threading
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from lipdub.media.audio import SAMPLE_RATE

CHUNK = 512  # samples per silero step at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous chunk that the model sees before each chunk
HOP_S = CHUNK / SAMPLE_RATE
_BLOCK = 250  # chunks per block (8 s): one model call each
_PREROLL = 62  # chunks of pre-roll per block (~2 s), outputs discarded
_lock = threading.Lock()
_recent: dict[tuple[int, int], np.ndarray] = {}


@lru_cache(maxsize=1)
def _model():
    """The packaged silero-vad sequence model as an ONNX Runtime session, once per process (no network access).
    The file is found without importing `silero_vad`, whose package imports torch."""
    import onnxruntime as ort

    package = importlib.util.find_spec("silero_vad")
    if package is None or not package.submodule_search_locations:
        raise ImportError("silero-vad is not installed (pip install silero-vad)")
    path = Path(package.submodule_search_locations[0]) / "data" / "silero_vad_16k_sequence.onnx"
    options = ort.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1  # each step is tiny: threads only synchronise
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


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
    """silero-vad over the audio, cut into blocks that each start afresh after a pre-roll (so a long file reads
    like its parts would alone); each chunk is led by the last CONTEXT samples of the one before, as the streaming
    model reads it."""
    n_chunks = int(np.ceil(len(wav) / CHUNK))
    if n_chunks == 0:
        return np.zeros(0, np.float32)
    n_blocks = int(np.ceil(n_chunks / _BLOCK))
    block = int(np.ceil(n_chunks / n_blocks))
    preroll = _PREROLL if n_blocks > 1 else 0
    chunks = np.zeros((preroll + n_chunks, CHUNK), np.float32)  # the first block's pre-roll is silence
    chunks[preroll:].reshape(-1)[: len(wav)] = np.nan_to_num(np.clip(wav, -1.0, 1.0))
    session, out = _model(), []
    for lo in range(0, n_chunks, block):
        part = chunks[lo: lo + preroll + block]
        context = np.zeros((len(part), CONTEXT), np.float32)
        context[1:] = part[:-1, -CONTEXT:]
        state = np.zeros((1, 1, 128), np.float32)
        probs = session.run(["speech_probs"], {"input": np.concatenate([context, part], 1), "h": state, "c": state})
        out.append(probs[0].reshape(-1)[preroll:])
    return np.concatenate(out)[:n_chunks].astype(np.float32)


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
