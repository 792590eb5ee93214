"""`--speaker` parsing, each speaker's activity on the output timeline, and how long the output lasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lipdub.audio.speakers import (
    FaceChoice,
    SpeakerSpec,
    check_speakers,
    first_frame,
    output_frames,
    parse_speaker,
    parse_time,
    speaker_activity,
)
from lipdub.errors import LipdubError
from lipdub.media import load_audio

DATA = Path(__file__).parent / "data" / "mix"
DIALOGUE = DATA / "dialogue_16k.flac"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"a": tmp_path / "a.wav", "b": tmp_path / "take 2, final.wav", "photo": tmp_path / "host.jpg"}
    for p in paths.values():
        p.write_bytes(b"x")
    return paths


def test_parse_face_by_id_pixel_or_photo(files):
    a, photo = files["a"], files["photo"]
    assert parse_speaker(f"face=1,audio={a}") == SpeakerSpec(audio=a, face=FaceChoice(face_id=1))
    assert parse_speaker(f"face=2,audio={a},start=3.5") == SpeakerSpec(a, FaceChoice(face_id=2), 3.5)
    assert parse_speaker(f"face-at=812:340,audio={a}").face == FaceChoice(at=(812.0, 340.0))
    assert parse_speaker(f"audio={a}, face-like={photo}").face == FaceChoice(like=photo)
    assert parse_speaker(f"audio={a}").face == FaceChoice()  # no face named: the default face


def test_a_file_name_may_contain_commas(files):
    spec = parse_speaker(f"face=1,audio={files['b']},start=2")
    assert spec.audio == files["b"] and spec.start == 2.0


@pytest.mark.parametrize(("text", "seconds"), [("3.5", 3.5), ("3.5s", 3.5), ("12", 12.0), ("1:02.5", 62.5),
                                               ("0:01:02.5", 62.5), ("1:00:00", 3600.0)])
def test_start_times(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "message"), [
    ("face=1", "audio=FILE is missing"),
    ("face=1,audio={a},volume=3", "unknown option 'volume=3'"),
    ("face=one,audio={a}", "face= takes a face id"),
    ("face-at=812,audio={a}", "face-at= takes a pixel X:Y"),
    ("face=1,face-at=3:4,audio={a}", "give one of face=, face-at="),
    ("face=1,face=2,audio={a}", "face= given twice"),
    ("face=1,audio=", "audio= has no value"),
    ("face=1,audio={a},start=soon", "start= takes seconds"),
    ("face=1,audio={a},start=-2", "start= must be 0 or later"),
    ("face=1,audio={missing}", "speaker audio file not found"),
    ("face-like={missing},audio={a}", "reference photo (face-like=) not found"),
])
def test_mistakes_get_a_one_line_error_naming_the_problem(files, text, message):
    text = text.format(a=files["a"], missing=files["a"].with_name("nope.wav"))
    with pytest.raises(LipdubError) as err:
        parse_speaker(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_several_speakers_must_each_name_a_face(files):
    a = files["a"]
    check_speakers([SpeakerSpec(a)])  # one speaker may use the default face
    check_speakers([SpeakerSpec(a, FaceChoice(face_id=1)), SpeakerSpec(a, FaceChoice(at=(5.0, 5.0)))])
    with pytest.raises(LipdubError, match="#2: with several speakers, name each face"):
        check_speakers([SpeakerSpec(a), SpeakerSpec(a, start=3.0)])


def test_activity_follows_the_real_speaker_turns_on_the_output_timeline():
    wav = load_audio(DIALOGUE, sr=16000, mono=True)  # 1.69 s silence, then a conversation to 9 s
    fps, start, n_frames = 25.0, 2.0, 14 * 25
    act = speaker_activity(wav, start, fps, n_frames)
    t = (np.arange(n_frames) + 0.5) / fps
    assert act.shape == (n_frames,) and act.dtype == np.float32
    assert np.all(act[t < start] == 0.0)  # not yet speaking
    assert np.all(act[(t > start) & (t < start + 1.69 - 0.1)] < 0.1)  # the silent lead-in of the clip
    turns = [line.split() for line in (DATA / "dialogue.rttm").read_text().splitlines()]
    inside = np.zeros(n_frames, bool)
    for row in turns:
        s, d = float(row[3]), float(row[4])
        inside |= (t > start + s + 0.1) & (t < start + s + d - 0.1)
    assert np.mean(act[inside] > 0.5) > 0.9
    assert np.all(act[t > start + len(wav) / 16000] == 0.0)  # its audio has ended


def test_activity_is_placed_at_the_exact_start_not_the_nearest_frame():
    # 0.1 s of silence, then 0.2 s of sound; starting at 1.02 s the sound spans 1.12-1.32 s = frames 28..32
    wav = np.zeros(int(0.3 * 16000), np.float32)
    wav[1600:] = 0.5

    def loudness(w: np.ndarray, fps: float) -> np.ndarray:  # fraction of each frame's samples that sound
        hop = int(16000 / fps)
        w = np.pad(w, (0, (-w.size) % hop))
        return (np.abs(w.reshape(-1, hop)) > 0).mean(axis=1)

    act = speaker_activity(wav, 1.02, 25.0, 50, probability=loudness)
    assert np.flatnonzero(act).tolist() == [28, 29, 30, 31, 32]
    assert np.all(act[28:33] == 1.0)


def test_two_speakers_each_speak_only_in_their_own_span():
    a = load_audio(DATA / "flemish_vl00203_22k.flac", sr=16000, mono=True)  # 2.31 s
    b = load_audio(DATA / "flemish_vl09647_22k.flac", sr=16000, mono=True)  # 2.18 s
    fps = 30000 / 1001
    n = int(np.ceil((3.5 + len(b) / 16000) * fps))
    rows = np.stack([speaker_activity(a, 0.0, fps, n), speaker_activity(b, 3.5, fps, n)])
    t = np.arange(n) / fps
    assert rows[0, t < 2.0].max() > 0.5 and rows[0, t > 2.35].max() == 0.0
    assert rows[1, t < 3.5 - 1 / fps].max() == 0.0 and rows[1, t > 3.7].max() > 0.5


def test_a_start_between_frames_leads_the_audio_to_the_frame_before():
    assert first_frame(0.0, 25.0) == (0, 0)
    assert first_frame(1.0, 25.0) == (25, 0)
    assert first_frame(1.02, 25.0) == (25, 320)  # 20 ms after frame 25 = 320 samples at 16 kHz
    assert first_frame(3.5, 30000 / 1001) == (104, round((3.5 - 104 * 1001 / 30000) * 16000))


def test_output_lasts_until_the_last_speech_or_the_whole_kept_video():
    assert output_frames(140, None) == 140  # a photo: until the last word
    assert output_frames(140, 500) == 140  # a longer video is cut there ...
    assert output_frames(140, 500, keep_video_length=True) == 500  # ... unless asked to keep it
    assert output_frames(140, 100, keep_video_length=True) == 140  # speech past a kept video's end still plays
    assert output_frames(140, None, keep_video_length=True) == 140  # a photo has no length to keep
