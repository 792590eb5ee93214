"""`lipdub animate` end to end: reference parity, timelines (stills, short and long videos), errors, atomic output."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lipdub import media
from lipdub.cli import main
from lipdub.pipeline import pingpong, source_indices

DATA = Path(__file__).parent / "data"
W2L = DATA / "wav2lip"
VIDEO = DATA / "pipeline" / "talk_2s.mp4"  # 2 s, 224x224, 25 fps, real talking head with its own audio
EXAMPLES = Path(__file__).parent.parent / "examples"
PORTRAIT = EXAMPLES / "portrait.jpg"
SPEECH = EXAMPLES / "speech_nl.wav"  # 4.17 s


@pytest.fixture(scope="module")
def protocol_checkpoint(tmp_path_factory) -> Path:
    from lipdub.engines.wav2lip.protocol import write_protocol_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "wav2lip_protocol.pth"
    write_protocol_checkpoint(path, kind="wav2lip")
    return path


def png_frames(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lipdub", *args], capture_output=True, text=True, timeout=600)


# ------------------------------------------------------------------------------------------ reference parity


def test_reference_parity_box_paste(tmp_path, protocol_checkpoint):
    """The issue's parity command: frames 0, 7, 73 equal the reference frames; the audio tail is kept."""
    out = tmp_path / "frames"
    rc = main(["animate", str(W2L / "face.png"), str(W2L / "speech_16k.wav"), "-o", str(out / "%05d.png"),
               "--checkpoint", str(protocol_checkpoint), "--box", "58", "183", "170", "281", "--paste", "box",
               "--fps", "25", "-q"])
    assert rc == 0
    frames = png_frames(out)
    # the reference makes 74 frames (one per mel window) and drops the last ~0.13 s of audio; we cover it all
    assert len(frames) == math.ceil(49460 / 16000 * 25) == 78
    face = read_png(W2L / "face.png").astype(np.int16)
    outside = np.ones(face.shape[:2], bool)
    outside[58:183, 170:281] = False
    for k in (0, 7, 73):
        got = read_png(frames[k]).astype(np.int16)
        want = np.asarray(Image.open(W2L / f"e2e_frame_{k:04d}.png").convert("RGB")).astype(np.int16)
        assert np.abs(got - want).mean() <= 0.5, k
        assert np.array_equal(got[outside], face[outside]), "pixels outside the box must not change"
    # the mouth really moves with the audio: frames differ inside the box
    assert not np.array_equal(read_png(frames[0]), read_png(frames[73]))


# ------------------------------------------------------------------------------------------ timelines


def test_pingpong_has_no_jump():
    n = 5
    seq = [pingpong(i, n) for i in range(14)]
    assert seq == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3]
    assert all(abs(a - b) == 1 for a, b in zip(seq, seq[1:], strict=False))
    assert source_indices(3, 1).tolist() == [0, 0, 0]


def test_still_with_default_engine_makes_a_synced_video(tmp_path):
    """No weights at all: the viseme engine animates the bundled portrait at its own size, audio muxed in."""
    out = tmp_path / "talking.mp4"
    proc = run_cli("animate", str(PORTRAIT), str(SPEECH), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "engine: viseme" in proc.stderr
    info = media.probe(out)
    src = media.probe(PORTRAIT)
    assert (info.width, info.height) == (src.width, src.height)
    assert info.fps == pytest.approx(25.0)
    speech_s = len(media.load_audio(SPEECH)) / 16000
    assert info.has_audio
    assert abs(info.duration - speech_s) <= 1 / 25 + 0.03
    assert info.num_frames == math.ceil(speech_s * 25)
    frames = list(media.iter_frames(out))
    # the mouth moves: some frames differ clearly from others
    diffs = [np.abs(f.astype(np.int16) - frames[0]).mean() for f in frames[::10]]
    assert max(diffs) > 0.2


def test_short_video_plays_forward_then_backward(tmp_path, protocol_checkpoint):
    """A 2 s video under 4.2 s of speech: output frame i shows source frame pingpong(i); outside the box, exactly."""
    out = tmp_path / "f"
    box = ["0", "40", "0", "40"]  # a corner box: everything else must be the untouched source frame
    rc = main(["animate", str(VIDEO), str(SPEECH), "-o", str(out / "%04d.png"), "--checkpoint",
               str(protocol_checkpoint), "--box", *box, "--paste", "box", "-q"])
    assert rc == 0
    src = list(media.iter_frames(VIDEO))
    got = png_frames(out)
    speech_s = len(media.load_audio(SPEECH)) / 16000
    assert len(got) == math.ceil(speech_s * 25)
    for i in (0, 30, 49, 50, 60, 98, 99, len(got) - 1):
        frame = read_png(got[i])
        want = src[pingpong(i, len(src))]
        assert np.array_equal(frame[40:], want[40:]), i


def test_long_video_is_cut_at_audio_end_unless_kept(tmp_path, protocol_checkpoint):
    speech = media.load_audio(SPEECH)[:16000]  # 1 s
    wav = tmp_path / "one_second.wav"
    media.write_audio(wav, speech, 16000)
    common = ["--checkpoint", str(protocol_checkpoint), "--box", "60", "200", "40", "180", "-q"]
    cut = tmp_path / "cut.mp4"
    assert main(["animate", str(VIDEO), str(wav), "-o", str(cut), *common]) == 0
    info = media.probe(cut)
    assert info.num_frames == 25
    kept = tmp_path / "kept.mp4"
    assert main(["animate", str(VIDEO), str(wav), "-o", str(kept), "--keep-video-length", *common]) == 0
    info = media.probe(kept)
    assert info.num_frames == 50
    assert abs(info.duration - 2.0) <= 1 / 25 + 0.03
    # after the new speech ends, the video's own audio comes back
    original = media.load_audio(VIDEO)
    out_audio = media.load_audio(kept)
    tail = slice(int(1.2 * 16000), int(1.9 * 16000))
    a, b = original[tail], out_audio[tail]
    assert np.sqrt(np.mean(b**2)) > 0.3 * np.sqrt(np.mean(a**2))
    assert np.corrcoef(a, b)[0, 1] > 0.8


# ------------------------------------------------------------------------------------------ bad input


def _one_clear_line(proc: subprocess.CompletedProcess, name: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("lipdub: error:")]
    assert len(lines) == 1, proc.stderr
    assert name in lines[0], lines[0]


def test_bad_inputs_give_one_line_and_leave_nothing(tmp_path, protocol_checkpoint):
    out = tmp_path / "out.mp4"
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    silent = tmp_path / "silent.wav"
    media.write_audio(silent, np.zeros(16000, np.float32), 16000)
    empty = tmp_path / "empty.wav"
    media.write_audio(empty, np.zeros(0, np.float32), 16000)
    no_audio = tmp_path / "no_audio.mp4"
    with media.VideoWriter(no_audio, 25) as w:
        for _ in range(5):
            w.write(np.zeros((32, 32, 3), np.uint8))
    wrong_ckpt = tmp_path / "wrong.pth"
    wrong_ckpt.write_bytes(b"\x80\x04 truncated pickle")

    cases = [
        (["animate", str(tmp_path / "missing.jpg"), str(SPEECH)], "missing.jpg"),
        (["animate", str(garbage), str(SPEECH)], "garbage.mp4"),
        (["animate", str(tiny), str(SPEECH)], "tiny.png"),
        (["animate", str(PORTRAIT), str(silent)], "silent.wav"),
        (["animate", str(PORTRAIT), str(empty)], "empty.wav"),
        (["animate", str(PORTRAIT), str(no_audio)], "no_audio.mp4"),
        (["animate", str(PORTRAIT), str(SPEECH), "--checkpoint", str(wrong_ckpt)], "wrong.pth"),
    ]
    for args, name in cases:
        proc = run_cli(*args, "-o", str(out), "-q")
        _one_clear_line(proc, name)
        assert not out.exists(), f"{name}: a failed run must leave no output"
        assert not list(tmp_path.glob(".*tmp*")), f"{name}: a failed run must leave no temp file"
    # --debug shows the traceback for bug reports
    proc = run_cli("--debug", "animate", str(garbage), str(SPEECH), "-o", str(out))
    assert "Traceback" in proc.stderr


def test_existing_output_survives_a_failed_run(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious earlier result")
    silent = tmp_path / "silent.wav"
    media.write_audio(silent, np.zeros(8000, np.float32), 16000)
    proc = run_cli("animate", str(PORTRAIT), str(silent), "-o", str(out), "-q")
    assert proc.returncode != 0
    assert out.read_bytes() == b"precious earlier result"


def test_output_may_not_overwrite_an_input(tmp_path):
    audio = tmp_path / "speech.wav"
    audio.write_bytes(SPEECH.read_bytes())
    proc = run_cli("animate", str(PORTRAIT), str(audio), "-o", str(audio), "-q")
    _one_clear_line(proc, "speech.wav")
    assert audio.read_bytes() == SPEECH.read_bytes()


# ------------------------------------------------------------------------------------------ faces that come and go


def test_frames_without_the_face_pass_through_and_the_run_goes_on(tmp_path):
    """Frames 20-29 show no face: they come out exactly as they went in; the mouth is edited elsewhere."""
    src = list(media.iter_frames(VIDEO))
    gap = range(20, 30)
    clip = tmp_path / "gap.mp4"
    with media.VideoWriter(clip, 25) as w:
        for i, frame in enumerate(src):
            w.write(np.full_like(frame, 128) if i in gap else frame)
    frames_in = list(media.iter_frames(clip))
    out = tmp_path / "out"
    speech = media.load_audio(SPEECH)[: 2 * 16000]
    wav = tmp_path / "speech2s.wav"
    media.write_audio(wav, speech, 16000)
    rc = main(["animate", str(clip), str(wav), "-o", str(out / "%04d.png"), "--engine", "viseme", "-q"])
    assert rc == 0
    got = [read_png(p) for p in png_frames(out)]
    assert len(got) == 50
    for i in gap:
        assert np.array_equal(got[i], frames_in[i]), i
    edited = [i for i in range(50) if i not in gap and not np.array_equal(got[i], frames_in[i])]
    assert len(edited) > 20


def test_fade_weights_ramp_around_gaps():
    from lipdub.media.fade import fade_weights

    present = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1], bool)
    w = fade_weights(present, frames=4)
    assert w[6] == w[7] == 0.0
    assert list(w[2:6]) == [1.0, 0.75, 0.5, 0.25]
    assert list(w[8:12]) == [0.25, 0.5, 0.75, 1.0]
    assert np.all(fade_weights(np.ones(5, bool)) == 1.0)


# ------------------------------------------------------------------------------------------ --fps on a video


def _flash_inputs(tmp_path: Path) -> tuple[Path, Path, np.ndarray, list[float]]:
    """VIDEO's first second (25 fps) with two 3-frame white flashes, and 1.3 s of real speech that clicks at each
    flash."""
    src = list(media.iter_frames(VIDEO))[:25]
    white = np.zeros(len(src), bool)
    white[[5, 6, 7, 20, 21, 22]] = True  # 0.20-0.32 s and 0.80-0.92 s
    video = tmp_path / "flash.mp4"
    with media.VideoWriter(video, 25) as w:
        for frame, flash in zip(src, white, strict=True):
            w.write(np.full_like(frame, 255) if flash else frame)
    speech = media.load_audio(SPEECH)[: int(1.3 * 16000)]
    speech = 0.25 * speech / np.abs(speech).max()
    clicks = [0.20, 0.80]
    t = np.arange(160) / 16000
    for c in clicks:
        at = int(c * 16000)
        speech[at:at + 160] = 0.9 * np.sin(2 * np.pi * 2000 * t)
    wav = tmp_path / "speech_clicks.wav"
    media.write_audio(wav, speech.astype(np.float32), 16000)
    return video, wav, white, clicks


@pytest.mark.parametrize("fps", [15.0, 24.0, 50.0])
def test_fps_resamples_a_video_by_timestamp_and_keeps_sound_in_sync(tmp_path, protocol_checkpoint, fps):
    """--fps on a video: output frame k shows the source at k/fps (then ping-pong at the video's end, at the
    output rate), the file lasts as long as the speech, and flashes meet the clicks of the soundtrack."""
    video, wav, white_src, clicks = _flash_inputs(tmp_path)
    out = tmp_path / "out.mp4"
    proc = run_cli("animate", str(video), str(wav), "-o", str(out), "--fps", f"{fps:g}", "--checkpoint",
                   str(protocol_checkpoint), "--box", "0", "32", "0", "32", "--paste", "box", "-q")
    assert proc.returncode == 0, proc.stderr
    info = media.probe(out)
    n = math.ceil(1.3 * fps)
    assert info.fps == pytest.approx(fps) and info.num_frames == n
    assert abs(info.duration - n / fps) < 1e-3
    sound = media.load_audio(out)
    assert abs(len(sound) / 16000 - n / fps) <= 1 / fps  # both streams end together

    n_src = int(1.0 * fps)  # the 1 s video has this many frames at the output rate
    shown = [int(pingpong(k, n_src) * 25 / fps + 1e-6) for k in range(n)]  # source frame at that timestamp
    expected = white_src[shown]
    got = np.array([f[40:].mean() > 200 for f in media.iter_frames(out)])
    assert got.tolist() == expected.tolist()
    assert expected[n_src:].any()  # the second flash comes back when the video plays backward

    onsets = np.flatnonzero(got[1:] & ~got[:-1]) + 1
    heard = [c - 0.05 + np.argmax(np.abs(sound[int((c - 0.05) * 16000):]) > 0.5) / 16000 for c in clicks]
    for seen, click, planned in zip(onsets[:2] / fps, heard, clicks, strict=True):
        assert abs(click - planned) < 0.005  # the sound is where it was put
        assert -0.005 < seen - click < 1 / fps + 0.005  # the first frame at or after the click shows the flash
