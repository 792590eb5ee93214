"""Wav2Lip mel features and window starts match what the reference release computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from lipdub.audio.mel import chunk_starts, mel_windows, melspectrogram, num_video_frames

DATA = Path(__file__).parent / "data" / "wav2lip"


def _speech() -> np.ndarray:
    sr, pcm = wavfile.read(DATA / "speech_16k.wav")
    assert sr == 16000 and pcm.dtype == np.int16
    return pcm.astype(np.float32) / 32768.0


def test_melspectrogram_matches_reference_golden():
    mel = melspectrogram(_speech())
    golden = np.load(DATA / "mel_golden.npy")
    assert mel.shape == golden.shape == (80, 248)
    assert mel.dtype == np.float32
    assert np.abs(mel - golden).max() <= 1e-4


CASES = json.loads((DATA / "mel_chunks.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['mel_frames']}@{c['fps']}" for c in CASES])
def test_chunk_starts_reference_rule(case):
    assert chunk_starts(case["mel_frames"], case["fps"]) == case["starts"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['mel_frames']}@{c['fps']}" for c in CASES])
def test_chunk_starts_with_n_frames_covers_audio_and_agrees_with_reference(case):
    T, fps = case["mel_frames"], case["fps"]
    n = num_video_frames((T - 1) * 200, fps)
    starts = chunk_starts(T, fps, n)
    assert len(starts) == n >= case["num_chunks"]
    # every frame the reference produces gets the same window
    assert starts[: case["num_chunks"]] == case["starts"]
    assert all(0 <= s <= T - 16 for s in starts)
    assert starts == sorted(starts) and starts[-1] == T - 16


def test_num_video_frames_covers_all_audio():
    assert num_video_frames(16000, 25) == 25
    assert num_video_frames(16001, 25) == 26
    assert num_video_frames(49460, 25) == 78
    assert num_video_frames(160000, 29.97) == 300


def test_mel_windows_stacks_columns():
    mel = np.tile(np.arange(40, dtype=np.float32), (80, 1))  # column index as value
    wins = mel_windows(mel, [0, 3, 24])
    assert wins.shape == (3, 1, 80, 16) and wins.dtype == np.float32
    np.testing.assert_array_equal(wins[1, 0, 5], np.arange(3, 19))
    np.testing.assert_array_equal(wins[2, 0, 79], np.arange(24, 40))
    with pytest.raises(ValueError):
        mel_windows(mel, [25])


def test_stereo_is_refused():
    with pytest.raises(ValueError, match="mono"):
        melspectrogram(np.zeros((2, 4000), np.float32))


def test_too_short_audio_is_an_error():
    with pytest.raises(ValueError, match="too short"):
        chunk_starts(10, 25)


def test_filterbank_and_preemphasis_are_librosa_s_and_scipy_s_to_the_bit():
    """The mel basis and the one-tap pre-emphasis are computed in numpy (no librosa, numba or scipy.signal in a
    wav2lip run): they must equal what the reference's libraries give."""
    import librosa
    from scipy.signal import lfilter

    from lipdub.audio import mel

    ref = librosa.filters.mel(sr=16000, n_fft=mel.N_FFT, n_mels=mel.NUM_MELS, fmin=mel.FMIN, fmax=mel.FMAX)
    assert np.array_equal(mel._mel_basis(), ref.astype(np.float32))
    x = _speech()
    assert np.array_equal(mel.preemphasis(x), lfilter([1.0, -mel.PREEMPHASIS], [1.0], x))


def test_mel_features_load_neither_librosa_nor_scipy_signal():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from lipdub.audio.mel import melspectrogram; "
            "melspectrogram(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)); "
            "print(sorted(m for m in ('librosa', 'numba', 'scipy.signal') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
