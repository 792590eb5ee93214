"""Voice activity on real speech: silence before the first turn, speech in the annotated turns, any length."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lipdub.audio import vad
from lipdub.media import load_audio

DATA = Path(__file__).parent / "data" / "viseme"
SRC = str(Path(__file__).parents[1] / "src")
FIRST_SPEECH = 4.69  # RTTM: the first turn starts here in the trimmed clip


@pytest.fixture(scope="module")
def dialogue() -> np.ndarray:
    return load_audio(DATA / "long_silence_12s.flac", sr=16000)


def rttm_turns() -> list[tuple[float, float]]:
    turns = []
    for line in (DATA / "long_silence_12s.rttm").read_text().splitlines():
        f = line.split()
        turns.append((float(f[3]), float(f[3]) + float(f[4])))
    return turns


def test_probability_per_frame_is_low_in_silence_and_high_in_turns(dialogue):
    fps = 25
    prob = vad.speech_probability(dialogue, fps)
    assert prob.shape == (int(np.ceil(len(dialogue) * fps / 16000)),) and prob.dtype == np.float32
    t = (np.arange(len(prob)) + 0.5) / fps
    silent = t < FIRST_SPEECH - 0.2
    assert prob[silent].max() < 0.5 and prob[silent].mean() < 0.05  # a click or two, never speech
    in_turn = np.zeros(len(t), bool)
    for a, b in rttm_turns():
        in_turn |= (t > a + 0.1) & (t < b - 0.1)
    assert np.mean(prob[in_turn] > 0.5) > 0.85


def test_segments_start_at_the_first_turn_and_cover_the_turns(dialogue):
    segments = vad.speech_segments(dialogue, min_silence=0.3, pad=0.05)
    assert abs(segments[0][0] - FIRST_SPEECH) < 0.2
    assert all(0 <= a < b <= 12.0 for a, b in segments)
    covered = sum(max(0.0, min(b, d) - max(a, c)) for a, b in segments for c, d in rttm_turns())
    total = sum(d - c for c, d in rttm_turns())
    assert covered / total > 0.85


def test_frame_count_follows_fps_and_odd_lengths():
    wav = np.zeros(16000 + 123, np.float32)
    for fps in (25, 29.97, 60):
        assert len(vad.speech_probability(wav, fps)) == int(np.ceil(len(wav) * fps / 16000))
    assert vad.speech_probability(np.zeros(0, np.float32), 25).shape == (0,)
    assert vad.speech_segments(np.zeros(0, np.float32)) == []
    assert vad.speech_segments(np.zeros(100, np.float32)) == []


def test_repeated_requests_are_served_from_memory(dialogue):
    first = vad.chunk_probabilities(dialogue)
    first[:] = -1  # callers may scribble on their copy
    again = vad.chunk_probabilities(dialogue)
    assert again.min() >= 0 and np.array_equal(again, vad.chunk_probabilities(dialogue.copy()))
    reversed_speech = np.ascontiguousarray(dialogue[::-1])  # same length, other samples: not the memo
    assert not np.allclose(vad.chunk_probabilities(reversed_speech), again, atol=0.1)


def test_long_audio_in_blocks_matches_the_short_run(dialogue):
    """A 36 s copy runs as several batched blocks; each repeat must read like the 12 s original."""
    single = vad.chunk_probabilities(dialogue)
    tiled = vad.chunk_probabilities(np.tile(dialogue, 3))
    n = len(dialogue) // vad.CHUNK
    for k in range(3):
        start = k * len(dialogue) // vad.CHUNK
        part = tiled[start + 40: start + n - 40]
        ref = single[40: n - 40][: len(part)]
        assert np.mean(np.abs(part - ref) > 0.3) < 0.03


def test_model_loads_from_the_wheel_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    vad._model.cache_clear()
    vad._recent.clear()
    prob = vad.chunk_probabilities(np.zeros(16000, np.float32))
    assert prob.max() < 0.2


def test_voice_activity_runs_without_torch():
    """The viseme engine's start-up: finding speech must not load torch (seconds of import)."""
    code = ("import sys, numpy as np; from lipdub.audio import vad; "
            "p = vad.chunk_probabilities(np.zeros(16000, np.float32)); "
            "assert len(p) == 32 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": SRC})
