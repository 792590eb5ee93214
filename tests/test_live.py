"""Live sessions, judged on their output: FaceMesh reads the mouth and eyes back from the frames pushed out while
real speech streams in 20 ms chunks. The newest frame is never more than 150 ms behind the audio, the mouth
rests closed in silence (while the eyes still blink and the head still moves) and opens with the speech,
frame timestamps stay locked to the audio over a long stream, and bad chunks get one line and change nothing."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
from mediapipe.python.solutions import face_mesh as mp_mesh

from lipdub.errors import LipdubError
from lipdub.live import ChunkError, LiveSession, LiveVoice
from lipdub.media import load_audio

DATA = Path(__file__).parent / "data"
PHOTO = DATA / "viseme" / "portraits" / "img_obama_smile_teeth.jpg"  # smiles with teeth apart
SPEECH = DATA / "viseme" / "long_silence_12s.flac"  # 4.69 s of silence, then two people talking
SECONDS = 9.0  # of it, streamed
SILENT_UNTIL = 4.5
FPS = 25
CHUNK = 320  # 20 ms


class Mesh:
    """FaceMesh (static) on a whole frame: mouth opening and eye aspect ratio in pixels."""

    def __init__(self) -> None:
        self.mesh = mp_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False)

    def points(self, image: np.ndarray) -> np.ndarray:
        result = self.mesh.process(image)
        assert result.multi_face_landmarks, "FaceMesh lost the face"
        h, w = image.shape[:2]
        return np.array([(q.x * w, q.y * h) for q in result.multi_face_landmarks[0].landmark])


def opening(p: np.ndarray) -> float:
    """Inner-lip gap over nose-bridge-to-chin length (as tests/test_viseme.py measures it)."""
    return float(np.linalg.norm(p[14] - p[13]) / np.linalg.norm(p[152] - p[168]))


def ear(p: np.ndarray) -> float:
    """Eye aspect ratio, both eyes averaged."""
    out = 0.0
    for a, b, c, d, e, f in ((33, 160, 158, 133, 153, 144), (362, 385, 387, 263, 373, 380)):
        out += (np.linalg.norm(p[b] - p[f]) + np.linalg.norm(p[c] - p[e])) / (2 * np.linalg.norm(p[a] - p[d]))
    return out / 2


@pytest.fixture(scope="module")
def stream():
    """The photo driven by the speech file in 20 ms pushes: latency after every push, every frame's time,
    and FaceMesh's reading of every other frame."""
    audio = load_audio(SPEECH, sr=16000)[:int(SECONDS * 16000)]
    session = LiveSession(PHOTO, seed=0)
    mesh = Mesh()
    latency, times, measured = [], [], {}

    def take(frames):
        for t, frame in frames:
            times.append(t)
            if len(times) % 2:
                measured[t] = mesh.points(frame)

    for k in range(0, len(audio), CHUNK):
        take(session.push(audio[k:k + CHUNK]))
        if times:
            latency.append(session.pushed_seconds - times[-1])
        elif session.pushed_seconds > 0.15:
            latency.append(np.inf)  # over 150 ms of audio in and still no frame
    take(session.close())
    t = np.array(sorted(measured))
    points = [measured[x] for x in t]
    return {"audio": audio, "latency": np.array(latency), "times": np.array(times), "t": t,
            "opening": np.array([opening(p) for p in points]), "ear": np.array([ear(p) for p in points]),
            "nose": np.array([p[1] for p in points]), "session": session}


def test_newest_frame_is_at_most_150_ms_behind_the_audio(stream):
    assert stream["latency"].max() <= 0.150 + 1e-9, f"worst latency {stream['latency'].max() * 1000:.0f} ms"
    assert np.median(stream["latency"]) > 0.05  # the look-ahead is used, not skipped


def test_every_frame_comes_once_on_the_audio_clock(stream):
    times, audio = stream["times"], stream["audio"]
    assert len(times) == int(np.ceil(len(audio) * FPS / 16000))
    assert np.array_equal(times, np.arange(len(times)) / FPS)


def test_mouth_rests_closed_in_silence_and_opens_with_speech(stream):
    t, op = stream["t"], stream["opening"]
    silent = t < SILENT_UNTIL
    assert op[silent].max() < 0.05 and np.median(op[silent]) < 0.03  # the photo's own smile is closed too
    speech = t > 4.8
    assert np.quantile(op[speech], 0.8) > 0.06, np.quantile(op[speech], 0.8)
    rms = librosa.feature.rms(y=stream["audio"], frame_length=1280, hop_length=640, center=True)[0]
    loud = np.convolve(20 * np.log10(np.maximum(rms, 1e-4)), np.ones(3) / 3, mode="same")
    r = np.corrcoef(op, loud[np.minimum(np.round(t * FPS).astype(int), len(loud) - 1)])[0, 1]
    assert r > 0.6, f"opening vs loudness correlation {r:.2f}"  # the bar tests/test_viseme.py sets offline


def test_eyes_blink_and_head_moves_in_silence(stream):
    t, e, nose = stream["t"], stream["ear"], stream["nose"]
    silent = t < SILENT_UNTIL
    # every other frame is measured, so the one fully shut frame may be skipped: a dip of a fifth is a blink
    # (open eyes vary by a few % between frames)
    assert e[silent].min() < 0.8 * np.median(e[silent]), "no blink in 4.5 s of silence"
    travel = np.ptp(nose[silent], axis=0)
    assert travel.max() > 0.5, f"the head stays still in silence (nose moves {travel} px)"


def test_timestamps_do_not_drift_over_a_long_stream():
    """40 s of speech and silence through the streaming analysis in uneven chunks (a simulated clock: as
    fast as it runs): after every push the frames out are exactly those whose look-ahead has arrived, and the
    frame count matches the audio to the frame at the end."""
    audio = load_audio(SPEECH, sr=16000)
    voice = LiveVoice(FPS, 0.15)
    rng = np.random.default_rng(0)
    total, n_out, seconds = 0, 0, 40
    while total < seconds * 16000:
        size = int(rng.integers(1, 16000))
        start = total % len(audio)
        chunk = np.resize(audio[start:], size).astype(np.float32)
        frames = voice.push(chunk)
        total += size
        assert [f.index for f in frames] == list(range(n_out, n_out + len(frames)))
        n_out += len(frames)
        assert all(f.time == f.index / FPS for f in frames)
        newest = (n_out - 1) / FPS
        assert 0.0 <= total / 16000 - newest <= 0.150 + 1e-9, (total, n_out)
    assert voice.samples.end - voice.samples.start < 3 * 16000 and len(voice.vad.probs) < 1200  # memory stays flat
    frames = voice.flush()
    assert n_out + len(frames) == int(np.ceil(total * FPS / 16000))


BAD = [
    (np.zeros(320, np.int16), "expected float32 samples, got int16"),
    (np.zeros(320, np.float64), "expected float32 samples, got float64"),
    (np.zeros((160, 2), np.float32), "expected mono (1-D) samples, got shape (160, 2)"),
    (np.zeros(0, np.float32), "empty"),
    (np.array([0.0, np.nan], np.float32), "contains NaN or infinite samples"),
    (b"\x00" * 64, "expected a numpy float32 array, got bytes"),
]


def test_a_bad_chunk_gets_one_line_and_the_session_goes_on():
    session = LiveSession(PHOTO, motion="none")
    good = load_audio(SPEECH, sr=16000)[80000:96000]
    frames = session.push(good[:8000])
    for chunk, problem in BAD:
        with pytest.raises(ChunkError) as err:
            session.push(chunk)
        assert problem in str(err.value) and "\n" not in str(err.value)
    frames += session.push(good[8000:])
    times = [t for t, _ in frames]
    assert times == [i / FPS for i in range(len(times))] and session.pushed_seconds == 1.0
    assert 1.0 - times[-1] <= 0.150


def test_options_are_checked():
    with pytest.raises(LipdubError, match="motion must be one of"):
        LiveSession(PHOTO, motion="wild")
    with pytest.raises(LipdubError, match="lookahead_ms"):
        LiveSession(PHOTO, lookahead_ms=40)
    with pytest.raises(LipdubError, match="live needs a photo"):
        LiveSession(SPEECH)


@pytest.mark.parametrize("args, says, code", [
    (["live", str(PHOTO), "--port", "70000"], "argument --port", 2),
    (["live", str(PHOTO), "--seed", "-1"], "argument --seed", 2),
    (["live", str(PHOTO), "--motion", "wild"], "argument --motion", 2),
    (["live", "missing.jpg"], "missing.jpg: not found", 1),
    (["live", str(DATA.parent / "web" / "data" / "no_face.jpg")], "no face found", 1),
])
def test_lipdub_live_refuses_bad_input_in_one_line(capsys, args, says, code):
    from lipdub.cli import main

    try:
        result = main(args)
    except SystemExit as exit_:
        result = exit_.code
    err = capsys.readouterr().err.strip()
    assert result == code and says in err and "\n" not in err, err
