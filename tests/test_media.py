"""lipdub.media: probing, stills, constant-rate frames, audio loading and atomic outputs on real files."""

from __future__ import annotations

import os
import stat
import threading
import time
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lipdub.errors import LipdubError, MediaError
from lipdub.media import (
    FrameSource,
    atomic_output,
    iter_frames,
    load_audio,
    probe,
    read_image,
    require_speech,
    write_audio,
)
from lipdub.media import video as media_video

DATA = Path(__file__).parent / "data" / "media"
GRID = DATA / "vid_grid_bbaf2n_3s.mpg"  # MPEG-1 360x288 25 fps 3 s + MP2 44.1 kHz stereo
M4A = DATA / "aud_en_librispeech_116-288045-0001.m4a"  # AAC 16 kHz mono 8.63 s
HEVC = DATA / "vid_hevc_vertical_1s_180x320.mp4"  # HEVC 180x320 25 fps 1 s, keyframe every 10, B-frames
WAV22 = DATA / "aud_nl_flemish_male_vl09647.wav"  # PCM16 22.05 kHz mono 2.18 s


def make_video(path: Path, levels: list[int], pts: list[int], time_base: Fraction, size=(64, 48),
               rate: int = 25) -> None:
    """A video whose frame i is flat gray `levels[i]` at `pts[i]` (ticks of `time_base`)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)  # also the last frame's duration: 1/rate
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        for level, t in zip(levels, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), level, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


# ---- probe ---------------------------------------------------------------------------------------------


def test_probe_video_with_audio():
    info = probe(GRID)
    assert (info.kind, info.width, info.height, info.fps, info.num_frames) == ("video", 360, 288, 25.0, 75)
    assert info.duration == pytest.approx(3.0)
    assert (info.has_audio, info.audio_rate, info.audio_channels) == (True, 44100, 2)


def test_probe_audio_and_image(tmp_path):
    info = probe(M4A)
    assert (info.kind, info.audio_rate, info.audio_channels, info.width) == ("audio", 16000, 1, None)
    assert info.duration == pytest.approx(8.63, abs=0.02)
    Image.new("RGB", (30, 20), (1, 2, 3)).save(tmp_path / "pic.webp")
    info = probe(tmp_path / "pic.webp")
    assert (info.kind, info.width, info.height, info.num_frames, info.fps) == ("image", 30, 20, 1, None)


def test_kind_is_decided_by_content_not_extension(tmp_path):
    png_named_mp4 = tmp_path / "really_a_png.mp4"
    Image.new("RGB", (16, 16), (9, 9, 9)).save(png_named_mp4, format="PNG")
    assert probe(png_named_mp4).kind == "image"
    frames = [Image.new("RGB", (16, 16), (c, c, c)) for c in (0, 120, 250)]
    gif = tmp_path / "anim.png"  # an animated GIF under a still's extension
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    info = probe(gif)
    assert (info.kind, info.num_frames, info.fps) == ("video", 3, 10.0)
    assert [int(f.mean()) for f in iter_frames(gif)] == pytest.approx([0, 120, 250], abs=3)
    webp = tmp_path / "anim.webp"  # FFmpeg cannot decode animated WebP: its first frame is the still
    frames[0].save(webp, format="WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert probe(webp).kind == "image" and read_image(webp).max() == 0


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b"this is not media at all" * 50), "not a readable"),
    (lambda p: Image.new("RGB", (1, 1)).save(p, format="PNG"), "image is 1x1 px, too small to hold a face"),
])
def test_probe_errors_are_one_line_naming_the_file(tmp_path, make, message):
    path = tmp_path / "input.png"
    make(path)
    with pytest.raises(MediaError) as err:
        probe(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_no_stream_errors(tmp_path):
    with pytest.raises(MediaError, match="has no video stream"):
        iter_frames(M4A)  # raised at the call, before any frame is asked for
    silent_video = tmp_path / "silent.mp4"
    make_video(silent_video, [10, 20], [0, 1], Fraction(1, 25))
    with pytest.raises(MediaError, match=r"silent\.mp4: has no audio stream"):
        load_audio(silent_video)


# ---- stills --------------------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    rgb = read_image(path)
    assert rgb.shape == (40, 20, 3) and rgb.dtype == np.uint8
    assert probe(path).width == 20 and probe(path).height == 40
    top, bottom = rgb[:15].reshape(-1, 3).mean(0), rgb[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]


def test_alpha_is_flattened_onto_white_and_modes_become_rgb(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[:, :6] = (10, 20, 30, 255)  # opaque
    rgba[:, 6:] = (10, 20, 30, 0)  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = read_image(tmp_path / "a.png")
    assert rgb.shape == (10, 12, 3)
    assert (rgb[:, :6] == (10, 20, 30)).all() and (rgb[:, 6:] == 255).all()

    gray16 = np.full((9, 9), 65535 // 2, np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    assert np.array_equal(read_image(tmp_path / "g16.png"), np.full((9, 9, 3), 127, np.uint8))
    palette = Image.fromarray(np.full((9, 9, 3), 77, np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "p.bmp")
    assert np.array_equal(read_image(tmp_path / "p.bmp"), np.full((9, 9, 3), 77, np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_still_formats(tmp_path, fmt):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, 16:] = (250, 250, 250)
    path = tmp_path / f"pic.{fmt.lower()}"
    Image.fromarray(rgb).save(path, format=fmt)
    info = probe(path)
    assert (info.kind, info.width, info.height, info.num_frames) == ("image", 32, 24, 1)
    back = read_image(path).astype(int)
    assert back.shape == (24, 32, 3) and np.abs(back[:, 2:14] - 0).max() < 12 and back[:, 18:].min() > 238
    assert np.array_equal(next(iter_frames(path)), read_image(path))


def test_read_image_of_video_is_an_error():
    with pytest.raises(MediaError, match="not a still image"):
        read_image(GRID)


# ---- video frames --------------------------------------------------------------------------------------


def test_iter_frames_count_and_shape_match_probe():
    frames = iter_frames(GRID)
    first = next(frames)
    assert first.shape == (288, 360, 3) and first.dtype == np.uint8
    assert 1 + sum(1 for _ in frames) == probe(GRID).num_frames == 75


def test_iter_frames_resamples_and_starts_at():
    assert sum(1 for _ in iter_frames(GRID, fps=10)) == 30  # 3 s at 10 fps
    full = list(iter_frames(GRID))
    assert np.array_equal(next(iter_frames(GRID, start=40)), full[40])


def test_hevc_decodes_upright_with_its_soundtrack():
    info = probe(HEVC)
    assert (info.kind, info.width, info.height, info.num_frames, info.fps) == ("video", 180, 320, 25, 25.0)
    frames = list(iter_frames(HEVC))
    assert len(frames) == 25 and frames[0].shape == (320, 180, 3)
    assert 20 < frames[0].mean() < 235 and not np.array_equal(frames[0], frames[-1])
    assert len(load_audio(HEVC)) / 16000 == pytest.approx(1.0, abs=0.05)


def test_variable_frame_rate_is_resampled_by_timestamp(tmp_path):
    path = tmp_path / "vfr.mkv"
    ms = Fraction(1, 1000)
    levels = [0, 60, 120, 180, 240]
    pts = [0, 100, 130, 400, 450]  # irregular; last frame lasts to ~0.5 s
    make_video(path, levels, pts, ms)
    frames = list(iter_frames(path, fps=20))  # one output frame every 50 ms
    seen = [int(round(f.mean())) for f in frames]
    # frame at t = last input frame with pts <= t
    expect = [0, 0, 60, 120, 120, 120, 120, 120, 180, 240]
    assert len(seen) == len(expect)
    assert seen == pytest.approx(expect, abs=3)


def test_variable_rate_on_a_regular_grid_keeps_every_frame(tmp_path):
    """A 30 fps phone clip that drops to 15 fps in low light: default rate 30, no input frame dropped."""
    path = tmp_path / "phone_vfr.mp4"
    slots = [0, 1, 2, 4, 6, 8, 9, 10, 12, 13]  # frame times in 1/30 s; gaps of 2 slots are the 15 fps parts
    make_video(path, [20 * i for i in range(10)], slots, Fraction(1, 30), rate=30)
    info = probe(path)
    assert info.fps == 30.0 and info.num_frames == 14
    seen = [round(f.mean() / 20) for f in iter_frames(path)]
    assert seen == [0, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 7, 8, 9]


def test_display_rotation_is_applied(tmp_path):
    """A phone video stored landscape with a 'rotate 90 degrees clockwise' display matrix comes out portrait."""
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:12, :12] = 255  # bright block top-left as stored
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)  # counter-clockwise degrees: -90 is 90 clockwise
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")), *stream.encode(None)]:
            out.mux(packet)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (32, 64, 270)
    shown = next(iter_frames(path))
    assert shown.shape == (64, 32, 3)
    assert shown[:12, -12:].mean() > 200 and shown[-12:, :12].mean() < 50  # top-left turned to top-right
    assert np.array_equal(next(FrameSource(path).frames([0])), shown)


@pytest.mark.parametrize("path, fps", [(HEVC, None), (GRID, None), (GRID, 29.97)])
def test_frame_source_backward_and_ping_pong_are_exact(path, fps, monkeypatch):
    forward = list(iter_frames(path, fps=fps))
    n = len(forward)
    seeks = []
    after_seek = media_video._after_seek
    monkeypatch.setattr(media_video, "_after_seek", lambda *a: seeks.append(1) or after_seek(*a))
    source = FrameSource(path, fps=fps)
    source.chunk = 8  # small chunks: many keyframe seeks inside the clip
    assert source.num_frames == n == (probe(path).num_frames if fps is None else n)
    backward = list(source.frames(reversed(range(n))))
    assert all(np.array_equal(a, b) for a, b in zip(backward, forward[::-1], strict=True))
    assert len(source._cache) <= 8 and len(seeks) >= n // 8 - 2  # bounded buffer, chunked seeks
    ping_pong = [*range(n), *range(n - 2, -1, -1), *range(1, n)]
    got = FrameSource(path, fps=fps).frames(ping_pong)
    assert all(np.array_equal(a, forward[k]) for a, k in zip(got, ping_pong, strict=True))


def test_frame_source_random_access_and_still(tmp_path):
    forward = list(iter_frames(GRID))
    order = [70, 3, 3, 50, 10, 74, 0]
    source = FrameSource(GRID)
    assert source.size == (360, 288) and source.fps == 25.0
    assert all(np.array_equal(a, forward[k]) for a, k in zip(source.frames(order), order, strict=True))
    with pytest.raises(IndexError):
        next(source.frames([75]))
    Image.new("RGB", (20, 10), (5, 6, 7)).save(tmp_path / "face.png")
    still = FrameSource(tmp_path / "face.png")
    assert (still.num_frames, still.size) == (1, (20, 10))
    first, again = still.frames([0, 0])
    first[:] = 0  # callers own what they get
    assert (again == (5, 6, 7)).all()


# ---- audio ---------------------------------------------------------------------------------------------


# ---- audio ---------------------------------------------------------------------------------------------


def test_pcm16_is_loaded_exactly():
    with wave.open(str(WAV22)) as w:
        ref = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    native = load_audio(WAV22, sr=None)
    assert native.dtype == np.float32 and np.array_equal(native, ref)
    at16k = load_audio(WAV22)
    assert at16k.shape == (round(len(ref) * 16000 / 22050),)
    import librosa  # Wav2Lip's loader: same samples at 16 kHz

    np.testing.assert_allclose(at16k, librosa.load(WAV22, sr=16000)[0], atol=1e-6)


def test_load_audio_of_codecs_and_video_soundtrack():
    speech = load_audio(M4A)
    assert speech.dtype == np.float32 and speech.ndim == 1
    assert len(speech) / 16000 == pytest.approx(8.63, abs=0.03)
    assert 0.05 < np.abs(speech).max() <= 1.0
    stereo = load_audio(GRID, sr=44100, mono=False)
    assert stereo.shape[0] == 2 and stereo.shape[1] / 44100 == pytest.approx(3.0, abs=0.05)
    mono = load_audio(GRID, sr=44100)
    np.testing.assert_allclose(mono, stereo.mean(0), atol=1e-6)


def test_surround_file_loads_with_its_channels_and_as_librosas_mono(tmp_path):
    import librosa

    speech = load_audio(M4A)[:32000]
    surround = np.stack([np.roll(speech, 800 * k) * (0.3 + 0.1 * k) for k in range(6)])  # 5.1, six voices
    write_audio(tmp_path / "surround.wav", surround, 16000)
    channels = load_audio(tmp_path / "surround.wav", sr=None, mono=False)
    assert channels.shape == surround.shape and np.abs(channels - surround).max() < 1e-4  # 16-bit wav
    mono = load_audio(tmp_path / "surround.wav", sr=None)
    assert np.array_equal(mono, librosa.load(tmp_path / "surround.wav", sr=None)[0])
    with pytest.raises(ValueError, match="channels, n"):  # 7.1 is the widest the writers encode
        write_audio(tmp_path / "nine.wav", np.zeros((9, 1600), np.float32), 16000)


def test_require_speech():
    with pytest.raises(LipdubError, match=r"voice\.wav: audio is empty"):
        require_speech(np.zeros(0, np.float32), "voice.wav")
    with pytest.raises(LipdubError, match=r"voice\.wav: audio is silent"):
        require_speech(np.full(16000, 1e-4, np.float32), "voice.wav")
    speech = load_audio(M4A)
    assert require_speech(speech, M4A) is speech


# ---- atomic outputs ------------------------------------------------------------------------------------


def test_atomic_output_replaces_on_success(tmp_path):
    target = tmp_path / "out.mp4"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != target
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_atomic_output_failure_leaves_old_output_and_no_temp(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def _umask_changed(mask: int) -> int:
    raise AssertionError("atomic_output changed the process umask (other threads would create files with it)")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_outputs_get_the_users_umask_mode_without_changing_the_umask(tmp_path, monkeypatch, umask, mode):
    speech = load_audio(WAV22)
    before = os.umask(umask)
    try:
        monkeypatch.setattr(os, "umask", _umask_changed)
        with atomic_output(tmp_path / "notes.txt") as tmp:
            tmp.write_text("hello")
        write_audio(tmp_path / "speech.wav", speech, 16000)  # a real muxer writing the temp file
    finally:
        monkeypatch.undo()
        os.umask(before)
    for name in ("notes.txt", "speech.wav"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert np.allclose(load_audio(tmp_path / "speech.wav"), speech, atol=1e-4)


def test_reading_never_modifies_the_input():
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (GRID, M4A, WAV22)}
    probe(GRID), list(iter_frames(GRID, fps=5)), load_audio(GRID), load_audio(M4A), load_audio(WAV22)
    assert before == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before}


# ---- decoding ahead in a thread ---------------------------------------------------------------------------


def decoder_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "lipdub-decode"]


def test_decoding_ahead_is_bounded_and_stops_when_the_caller_stops():
    pulled = []

    def indices():
        for k in range(75):
            pulled.append(k)
            yield k

    source = FrameSource(GRID)
    frames = source.frames(indices())
    first = next(frames)
    time.sleep(0.5)  # the decoder thread runs ahead meanwhile, but only a few frames
    # taken + queued + one waiting to be queued + one index of lookahead
    assert len(pulled) <= 1 + media_video.prefetch_depth(*source.size) + 2 < 75
    assert np.array_equal(first, next(iter_frames(GRID)))
    frames.close()  # the caller stops early: the thread ends, nothing more is decoded
    assert decoder_threads() == []
    stopped_at = len(pulled)
    time.sleep(0.2)
    assert len(pulled) == stopped_at
    it = iter_frames(GRID)
    next(it)
    del it  # dropped without close (garbage collected): the thread ends too
    assert decoder_threads() == []


def test_a_decoding_error_reaches_the_caller_after_the_frames_before_it(tmp_path):
    got = []
    with pytest.raises(IndexError, match="frame 99 out of range"):
        for frame in FrameSource(GRID).frames([0, 1, 2, 99, 3]):
            got.append(frame)
    assert len(got) == 3 and decoder_threads() == []
    broken = tmp_path / "broken.mp4"  # a valid header, then the picture data cut off
    make_video(broken, list(range(0, 250, 10)), list(range(25)), Fraction(1, 25))
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises((MediaError, av.FFmpegError)):
        list(iter_frames(broken))
    assert decoder_threads() == []
