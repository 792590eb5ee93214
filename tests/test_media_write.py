"""lipdub.media writers: H.264/AAC video at an exact rate, odd sizes, PNG sequences, wav/flac, atomicity."""

from __future__ import annotations

import threading
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lipdub.errors import LipdubError
from lipdub.media import VideoWriter, iter_frames, load_audio, probe, read_image, write_audio

WAV22 = Path(__file__).parent / "data" / "media" / "aud_nl_flemish_male_vl09647.wav"


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    wave_ = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return wave_ if channels == 1 else np.stack([wave_, -wave_])


def stream_seconds(path: Path) -> dict[str, float]:
    with av.open(str(path)) as container:
        return {s.type: float(s.duration * s.time_base) for s in container.streams}


def test_video_and_audio_durations_match_what_was_given(tmp_path):
    out = tmp_path / "talk.mp4"
    with VideoWriter(out, 25, audio=tone(4.0, 16000), audio_rate=16000) as writer:
        for i in range(100):
            writer.write(np.full((48, 64, 3), i, np.uint8))
    seconds = stream_seconds(out)
    assert seconds["video"] == pytest.approx(4.0, abs=0.04) and seconds["audio"] == pytest.approx(4.0, abs=0.04)
    info = probe(out)
    assert (info.num_frames, info.fps, info.width, info.height, info.audio_rate) == (100, 25.0, 64, 48, 16000)
    with av.open(str(out)) as container:  # interleaved: audio packets arrive alongside the video, not at the end
        kinds = [p.stream.type for p in container.demux() if p.size][:60]
    assert "audio" in kinds[:30]
    sound = load_audio(out, sr=16000)
    assert len(sound) == 64000  # exactly what was given: the AAC padding is cut by the edit list
    assert np.abs(sound).max() == pytest.approx(0.3, abs=0.03)


def test_ntsc_rate_is_exact_and_stereo_audio(tmp_path):
    out = tmp_path / "ntsc.mkv"
    with VideoWriter(out, 29.97, audio=tone(1.0, 48000, channels=2), audio_rate=48000) as writer:
        for i in range(30):
            writer.write(np.full((32, 32, 3), 8 * i, np.uint8))
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    info = probe(out)
    assert info.num_frames == 30 and info.audio_channels == 2
    # mkv rounds timestamps to 1 ms: still every frame once, none dropped or doubled
    assert [round(f.mean() / 8) for f in iter_frames(out)] == list(range(30))
    left, right = load_audio(out, sr=48000, mono=False)
    assert np.corrcoef(left[2000:40000], right[2000:40000])[0, 1] < -0.99  # channels kept apart


def test_colors_survive_the_round_trip(tmp_path):
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:32, :32], rgb[:32, 32:], rgb[32:, :32], rgb[32:, 32:] = (200, 50, 100), (30, 160, 90), (20, 40, 220), 128
    out = tmp_path / "c.mp4"
    with VideoWriter(out, 25) as writer:
        writer.write(rgb)
    back = next(iter_frames(out)).astype(int)
    inner = np.s_[4:28, 4:28]
    for ys, xs in [(0, 0), (0, 32), (32, 0), (32, 32)]:
        block = back[ys:ys + 32, xs:xs + 32][inner].reshape(-1, 3).mean(0)
        assert np.abs(block - rgb[ys + 8, xs + 8]).max() < 6


def test_odd_size_is_padded_by_edge_and_reads_back(tmp_path):
    rgb = np.zeros((49, 65, 3), np.uint8)
    rgb[:, -1] = 255  # a white last column: the pad replicates it
    rgb[-1, :] = 255
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 25) as writer:
        writer.write(rgb)
        writer.write(rgb)
    info = probe(out)
    assert (info.width, info.height, info.num_frames) == (66, 50, 2)
    back = next(iter_frames(out))
    assert back[10:40, 10:50].mean() < 10 and back[10:40, 64:].mean() > 200 and back[48:, 10:50].mean() > 200


def test_png_sequence_is_lossless_with_audio_beside(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (9, 11, 3), dtype=np.uint8) for _ in range(3)]
    pattern = tmp_path / "frames" / "%05d.png"
    with VideoWriter(pattern, 25, audio=tone(0.12, 16000), audio_rate=16000) as writer:
        for f in frames:
            writer.write(f)
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["00000.png", "00001.png", "00002.png", "audio.wav"]
    for i, f in enumerate(frames):
        assert np.array_equal(read_image(tmp_path / "frames" / f"{i:05d}.png"), f)
    assert len(load_audio(tmp_path / "frames" / "audio.wav")) == 1920
    with VideoWriter(pattern, 25) as writer:  # a shorter re-run replaces the sequence, not half of it
        writer.write(frames[2])
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.png")) == ["00000.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_failure_while_writing_leaves_nothing_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="engine crashed"), VideoWriter(out, 25, audio=tone(1, 16000),
                                                                          audio_rate=16000) as writer:
        for i in range(10):
            writer.write(np.full((32, 32, 3), i, np.uint8))
        raise RuntimeError("engine crashed")
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    with pytest.raises(ValueError), VideoWriter(tmp_path / "new.mp4", 25) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
        writer.write(np.zeros((30, 32, 3), np.uint8))  # size changed mid-video
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    with pytest.raises(LipdubError, match="no frames"), VideoWriter(tmp_path / "empty.mp4", 25):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_write_audio_round_trips_pcm16(tmp_path):
    with wave.open(str(WAV22)) as w:
        ref = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    for name in ("copy.wav", "copy.flac"):
        write_audio(tmp_path / name, ref, 22050)
        assert np.array_equal(load_audio(tmp_path / name, sr=None), ref)
    with pytest.raises(LipdubError, match="cannot write audio"):
        write_audio(tmp_path / "x.xyz", ref, 22050)


def test_surround_audio_is_downmixed_to_stereo(tmp_path):
    surround = np.zeros((6, 16000), np.float32)  # 5.1 with sound only in the centre channel
    surround[2] = tone(1.0, 16000)
    out = tmp_path / "surround.mp4"
    with VideoWriter(out, 25, audio=surround, audio_rate=16000) as writer:
        for _ in range(25):
            writer.write(np.zeros((16, 16, 3), np.uint8))
    assert probe(out).audio_channels == 2
    left, right = load_audio(out, mono=False)
    assert np.abs(left).max() == pytest.approx(0.3 * 0.7071, abs=0.03)
    np.testing.assert_allclose(left, right, atol=1e-3)


def test_silent_and_empty_audio_load_as_arrays_and_fail_require_speech(tmp_path):
    from lipdub.media import require_speech

    write_audio(tmp_path / "zeros.wav", np.zeros(8000, np.float32), 16000)
    write_audio(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    zeros, empty = load_audio(tmp_path / "zeros.wav"), load_audio(tmp_path / "empty.wav")
    assert zeros.shape == (8000,) and not zeros.any() and empty.shape == (0,) and empty.dtype == np.float32
    with pytest.raises(LipdubError, match=r"zeros\.wav: audio is silent"):
        require_speech(zeros, tmp_path / "zeros.wav")
    with pytest.raises(LipdubError, match=r"empty\.wav: audio is empty"):
        require_speech(empty, tmp_path / "empty.wav")


def encoder_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "lipdub-encode"]


def test_an_encoder_error_reaches_the_caller_soon_and_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    written = 0
    with pytest.raises(av.FFmpegError, match="preset"), VideoWriter(out, 25, preset="no-such-preset") as writer:
        for _ in range(200):  # x264 refuses the preset in the encoder thread, on the first frame
            writer.write(np.zeros((64, 64, 3), np.uint8))
            written += 1
    assert written <= 10  # raised by a write a few frames later (bounded queue), not only at the end
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert encoder_threads() == []


def test_the_caller_may_reuse_its_frame_buffer_and_no_thread_outlives_the_writer(tmp_path):
    out = tmp_path / "reuse.mkv"
    buffer = np.zeros((32, 48, 3), np.uint8)
    with VideoWriter(out, 25) as writer:
        for i in range(30):
            buffer[:] = 8 * i  # the writer encodes later, in its thread: it must have taken its own copy
            writer.write(buffer)
    assert encoder_threads() == []
    assert [round(f.mean() / 8) for f in iter_frames(out)] == list(range(30))
    with pytest.raises(KeyboardInterrupt), VideoWriter(tmp_path / "stopped.mp4", 25) as writer:
        for i in range(20):
            writer.write(np.full((32, 48, 3), i, np.uint8))
        raise KeyboardInterrupt  # Ctrl-C while frames wait in the queue
    assert encoder_threads() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reuse.mkv"]
