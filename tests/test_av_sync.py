"""A/V sync at the media level: a mixed soundtrack and frames written together stay in sync to the last frame.

Frames flash white at known indices and the soundtrack (built by mix_soundtrack) clicks at the same instants;
the file is read back with PyAV: both streams must last the same (within one frame), the audio must start
at 0, and clicks must match flashes within one frame at the start and at the end (no drift).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lipdub.audio.mix import SpeechTrack, mix_soundtrack
from lipdub.media import VideoWriter

SIZE = 32
CLICK_RATE = 48000


def click(rate: int) -> np.ndarray:
    """A 4 ms 2 kHz tone burst: a short, unmistakable marker that AAC keeps."""
    t = np.arange(int(0.004 * rate)) / rate
    return (0.8 * np.sin(2 * np.pi * 2000 * t) * np.hanning(t.size)).astype(np.float32)


def onset_delay() -> float:
    """Seconds from a click's start to where read_back() detects it (its envelope crossing 0.4)."""
    return float(np.argmax(np.abs(click(CLICK_RATE)) > 0.4) / CLICK_RATE)


def marker_frames(n_frames: int, fps: Fraction) -> list[int]:
    """Flash/click frames: near the start, in the middle and near the end (not on round seconds)."""
    near_end = [n_frames - int(3 * fps) - 7, n_frames - int(fps) - 3]
    return [5, int(fps) + 11, n_frames // 2 + 1, *near_end]


def write_marked(path: Path, fps: Fraction, seconds: float, rate: int) -> tuple[list[int], int]:
    """Write the marked video; returns (marker frame indices, frame count)."""
    n_frames = int(round(seconds * fps))
    markers = marker_frames(n_frames, fps)
    tracks = [SpeechTrack(click(CLICK_RATE), CLICK_RATE, float(Fraction(k) / fps)) for k in markers]
    audio, out_rate = mix_soundtrack(tracks, None, duration=float(n_frames / fps), out_rate=rate)
    assert audio.shape[1] == round(n_frames / fps * rate)
    black = np.zeros((SIZE, SIZE, 3), np.uint8)
    white = np.full((SIZE, SIZE, 3), 255, np.uint8)
    flashes = set(markers)
    with VideoWriter(path, fps, audio=audio, audio_rate=out_rate) as writer:
        for i in range(n_frames):
            writer.write(white if i in flashes else black)
    return markers, n_frames


def read_back(path: Path) -> dict:
    """Stream durations, first audio time, flash times (s) and click onsets (s), measured with PyAV."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        video_rate = v.average_rate
        flashes, n_video, first_video = [], 0, None
        for frame in c.decode(v):
            t = frame.pts * v.time_base
            first_video = t if first_video is None else first_video
            assert frame.format.name == "yuv420p"  # so its luma plane is read as stored, no conversion per frame
            if frame.to_ndarray()[: frame.height].mean() > 128:  # luma: black 16, white 235
                flashes.append(float(t))
            n_video += 1
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        parts, first_audio = [], None
        for frame in c.decode(a):
            first_audio = float(frame.pts * a.time_base) if first_audio is None else first_audio
            parts.append(frame.to_ndarray()[0])
        audio, rate = np.concatenate(parts), a.rate
    env = np.abs(audio) > 0.4  # half the click's peak: its onset, robust to codec pre-echo
    rising = np.flatnonzero(env[1:] & ~env[:-1]) + 1
    onsets = [rising[0]] + [r for p, r in zip(rising[:-1], rising[1:], strict=True) if r - p > rate // 10]
    return {"video_duration": float(n_video / video_rate), "first_video": float(first_video),
            "audio_duration": audio.size / rate, "first_audio": first_audio,
            "flashes": flashes, "clicks": [o / rate for o in onsets], "fps": video_rate}


@pytest.mark.slow
@pytest.mark.parametrize(("fps", "minutes", "rate"), [
    (Fraction(30000, 1001), 10, 48000),  # the drift-prone NTSC rate, over the full 10 minutes
    (Fraction(24), 2, 44100),
    (Fraction(25), 2, 48000),
    (Fraction(30), 2, 16000),
], ids=["29.97fps-10min", "24fps-2min", "25fps-2min", "30fps-2min"])
def test_soundtrack_and_frames_stay_in_sync_to_the_end(tmp_path, fps, minutes, rate):
    markers, n_frames = write_marked(tmp_path / "sync.mp4", fps, minutes * 60, rate)
    got = read_back(tmp_path / "sync.mp4")
    frame = 1 / float(fps)
    assert got["fps"] == fps
    assert got["video_duration"] == pytest.approx(n_frames * frame, abs=1e-9)
    assert abs(got["audio_duration"] - got["video_duration"]) < frame
    assert got["first_audio"] == 0.0 and got["first_video"] == 0.0
    expected = [float(k / fps) for k in markers]
    assert got["flashes"] == pytest.approx(expected, abs=1e-6)
    assert len(got["clicks"]) == len(markers)
    offsets = np.array(got["clicks"]) - np.array(got["flashes"])
    assert np.abs(offsets).max() < frame  # each click within one frame of its flash ...
    assert np.abs(offsets - onset_delay()).max() < 0.0005  # ... in fact at its exact instant (0.5 ms) ...
    assert abs(offsets[-1] - offsets[0]) < 0.0005  # ... and with no drift between the start and the end
