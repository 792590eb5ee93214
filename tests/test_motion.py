"""Living stills, judged by FaceMesh on the output frames (not by the plan's own numbers): blinks at a human
rate that shut and reopen the eye, head rotations of a degree or two with no jumps, calm in silence, the
photo's border untouched, closed eyes left alone, groups, determinism, the pipeline and the CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile
from mediapipe.python.solutions import face_mesh as mp_mesh
from PIL import Image
from scipy.ndimage import uniform_filter1d
from scipy.spatial.transform import Rotation

from lipdub.cli import main
from lipdub.faces import detect_faces
from lipdub.faces.types import Face
from lipdub.media import iter_frames, load_audio, read_image
from lipdub.motion import Motion, voice_of

DATA = Path(__file__).parent / "data"
FPS = 25
SPEECH = DATA / "media" / "aud_en_librispeech_116-288045-0001.m4a"  # 8.6 s of read English
HOST = DATA / "prep" / "host.jpg"  # 256x256 frontal frame of a talking-head video
KINDS = {  # photo -> the most an eye may keep open when shut (FaceMesh EAR over the photo's own)
    "frontal": (DATA / "viseme" / "portraits" / "img_obama_smile_teeth.jpg", 0.55),
    "three_quarter": (DATA / "motion" / "three_quarter_224.jpg", 0.55),
    "glasses": (DATA / "viseme" / "portraits" / "img_young_man_glasses_curly_pursed_lips.jpg", 0.9),
    "long_hair": (DATA / "viseme" / "portraits" / "img_woman_surprised_open_mouth.jpg", 0.5),
    "beard": (DATA / "viseme" / "portraits" / "img_southasian_man_glasses_beard_teeth.jpg", 0.75),
    "small_face": (DATA / "motion" / "small_face_720x1280.jpg", 0.55),
}
_EXCLUDED = {i for part in (mp_mesh.FACEMESH_LEFT_EYE, mp_mesh.FACEMESH_RIGHT_EYE, mp_mesh.FACEMESH_LEFT_EYEBROW,
                            mp_mesh.FACEMESH_RIGHT_EYEBROW, mp_mesh.FACEMESH_LIPS) for edge in part for i in edge}
RIGID = np.array([i for i in range(468) if i not in _EXCLUDED])  # face outline, nose, cheeks, forehead


# --------------------------------------------------------------------------------------------- measuring


class Meter:
    """FaceMesh (static, refined) on a square crop around a face; 3-D points in full-frame pixels."""

    def __init__(self) -> None:
        self.mesh = mp_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)

    def points(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = 2.0 * max(box[2] - box[0], box[3] - box[1])
        m = np.float32([[256 / side, 0, 128 - cx * 256 / side], [0, 256 / side, 128 - cy * 256 / side]])
        crop = cv2.warpAffine(image, m, (256, 256), flags=cv2.INTER_LINEAR)
        result = self.mesh.process(crop)
        assert result.multi_face_landmarks, "FaceMesh lost the face"
        p = np.array([(q.x, q.y, q.z) for q in result.multi_face_landmarks[0].landmark]) * 256
        p[:, :2] -= m[:, 2]
        return p * side / 256


@pytest.fixture(scope="module")
def meter() -> Meter:
    return Meter()


def ear(p: np.ndarray) -> float:
    """Eye aspect ratio (Soukupova & Cech), both eyes averaged: lid-to-lid height over eye width."""
    out = 0.0
    for a, b, c, d, e, f in ((33, 160, 158, 133, 153, 144), (362, 385, 387, 263, 373, 380)):
        n = lambda i, j: np.linalg.norm(p[i, :2] - p[j, :2])  # noqa: E731
        out += (n(b, f) + n(c, e)) / (2 * n(a, d))
    return out / 2


def head_pose(model: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) degrees of the face points `p` relative to the photo's 3-D points `model`: the
    weak-perspective camera that best maps the model's rigid points onto the frame's."""
    x = model[RIGID] - model[RIGID].mean(0)
    y = p[RIGID, :2] - p[RIGID, :2].mean(0)
    m = np.linalg.lstsq(x, y, rcond=None)[0]
    r1 = m[:, 0] / np.linalg.norm(m[:, 0])
    r2 = m[:, 1] - r1 * (r1 @ m[:, 1])
    r2 /= np.linalg.norm(r2)
    return np.degrees(Rotation.from_matrix(np.stack([r1, r2, np.cross(r1, r2)])).as_euler("yxz"))


def border_mask(shape: tuple[int, ...], band: float = 0.02, corner: float = 0.1) -> np.ndarray:
    """The photo's border band and its corner squares."""
    h, w = shape[:2]
    mask = np.zeros((h, w), bool)
    b, c = max(2, int(band * min(h, w))), int(corner * min(h, w))
    mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = True, True, True, True
    for ys in (slice(0, c), slice(h - c, h)):
        for xs in (slice(0, c), slice(w - c, w)):
            mask[ys, xs] = True
    return mask


def speech(seconds: float, pause: float = 0.8) -> np.ndarray:
    """Stored speech looped with pauses between the repeats (a 2 s pause in the middle), cut to `seconds`."""
    a = load_audio(SPEECH, sr=16000)
    gap, long_gap = np.zeros(int(pause * 16000), np.float32), np.zeros(32000, np.float32)
    return np.concatenate([a, gap, a, long_gap, a, gap, a])[: int(seconds * 16000)]


def face_of(image: np.ndarray) -> Face:
    face = max(detect_faces(image), key=lambda f: f.area)
    face.track_id = 0
    return face


def blinks(e: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each dip of the eye aspect ratio below 60 % of the open eye."""
    low = e < 0.6 * np.median(e)
    starts = np.flatnonzero(low & ~np.r_[False, low[:-1]])
    ends = np.flatnonzero(low & ~np.r_[low[1:], False])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


# --------------------------------------------------------------------------------------------- tests


def test_thirty_seconds_blink_like_a_person_and_nod_without_jumps(meter):
    image = read_image(HOST)
    face = face_of(image)
    n = 30 * FPS
    voice = voice_of(speech(30), 0, FPS, n)
    motion = Motion(image, [face], {0: voice}, FPS, n, "natural", seed=0)
    model = meter.points(image, face.box)
    border = border_mask(image.shape)
    e, pose = np.zeros(n), np.zeros((n, 3))
    for i in range(n):
        frame, _ = motion.frame(i)
        assert np.array_equal(frame[border], image[border]), f"frame {i}: the photo's border changed"
        p = meter.points(frame, face.box)
        e[i], pose[i] = ear(p), head_pose(model, p)
    open_eye = np.median(e)
    dips = blinks(e)
    assert 15 <= len(dips) * 60 / 30 <= 25, f"{len(dips)} blinks in 30 s"
    for first, last in dips:
        assert e[first:last + 1].min() < 0.4 * open_eye, f"blink at frame {first} does not shut the eye"
        assert last - first + 1 <= 0.3 * FPS, f"blink at frame {first} stays shut too long"
        assert e[last + 1:last + 1 + FPS // 2].max() > 0.85 * open_eye, f"eye does not reopen after {first}"
    # FaceMesh itself jitters by ~0.15 degrees a frame on resampled pixels: a 3-frame mean removes that
    smooth = uniform_filter1d(pose, 3, axis=0)
    rms = np.sqrt(np.mean((smooth - smooth.mean(0)) ** 2, axis=0))
    assert np.all((rms >= 0.5) & (rms <= 3.0)), f"yaw/pitch/roll RMS {rms.round(2)} degrees"
    steps = np.abs(np.diff(smooth, axis=0)).max(0)
    assert np.all(steps <= 0.5), f"largest frame-to-frame step {steps.round(2)} degrees"
    talking = voice.active[1:] > 0.5
    speed = np.abs(np.diff(smooth, axis=0)).sum(1)
    assert (~talking).sum() > 2 * FPS and speed[~talking].mean() < 0.8 * speed[talking].mean(), "not calm in pauses"


@pytest.mark.parametrize("kind", list(KINDS))
def test_photos_of_every_kind_blink_turn_and_keep_their_border(meter, kind):
    path, shut_at_most = KINDS[kind]
    image = read_image(path)
    face = face_of(image)
    n = 6 * FPS
    voice = voice_of(speech(6), 0, FPS, n)
    motion = Motion(image, [face], {0: voice}, FPS, n, "natural", seed=1)
    model = meter.points(image, face.box)
    open_eye = ear(model)
    border = border_mask(image.shape)
    shut = int(np.argmax(motion.movers[0].controls.blink))  # which frame to look at; FaceMesh says how shut
    poses = []
    for i in range(0, n, 3):
        frame, _ = motion.frame(i)
        assert np.array_equal(frame[border], image[border]), f"{kind}: border changed in frame {i}"
        poses.append(head_pose(model, meter.points(frame, face.box)))
    rms = np.sqrt(np.mean((np.array(poses) - np.mean(poses, 0)) ** 2, axis=0))
    assert rms.max() > 0.4 and rms.max() < 3.0, f"{kind}: head pose RMS {rms.round(2)}"
    frame, moved = motion.frame(shut)
    assert ear(meter.points(frame, face.box)) < shut_at_most * open_eye, f"{kind}: the blink does not shut"
    # the moved landmarks handed to the mouth engine are where FaceMesh finds the mouth
    mouth = meter.points(frame, face.box)[[13, 14, 61, 291], :2]
    assert np.abs(mouth - moved[0].landmarks[[13, 14, 61, 291]]).max() < 0.06 * face.width, kind


def test_closed_eyes_are_left_alone(meter):
    image = read_image(DATA / "motion" / "closed_eyes_256.jpg")
    face = face_of(image)
    n = 8 * FPS
    voice = voice_of(speech(8), 0, FPS, n)
    idle = Motion(image, [face], {}, FPS, n, "natural", seed=0)  # not speaking: blinks only
    assert all(np.array_equal(idle.frame(i)[0], image) for i in range(0, n, 2)), "closed eyes were blinked"
    lively = Motion(image, [face], {0: voice}, FPS, n, "lively", seed=0)
    shut = ear(meter.points(image, face.box))
    assert max(ear(meter.points(lively.frame(i)[0], face.box)) for i in range(0, n, 8)) < 1.5 * shut + 0.02


def test_group_photo_only_the_speaker_moves_and_two_speakers_do_not_fight(meter):
    image = read_image(DATA / "mix" / "couple_640.jpg")
    faces = sorted(detect_faces(image), key=lambda f: f.box[0])
    assert len(faces) == 2
    for k, f in enumerate(faces):
        f.track_id = k
    n = 4 * FPS
    voice = voice_of(speech(4), 0, FPS, n)
    models = [meter.points(image, f.box) for f in faces]
    border = border_mask(image.shape)

    def pose_spread(motion: Motion) -> np.ndarray:
        poses = [[head_pose(models[k], meter.points(motion.frame(i)[0], f.box)) for k, f in enumerate(faces)]
                 for i in range(0, n, 4)]
        return np.std(np.array(poses), axis=0).max(axis=1)  # per face: largest std over yaw/pitch/roll

    one = Motion(image, faces, {1: voice}, FPS, n, "lively", seed=2)
    assert pose_spread(one)[1] > 0.4, "the speaker does not move"
    # the quiet face only blinks: its pixels are exactly those of a photo where nobody speaks
    nobody = Motion(image, faces, {}, FPS, n, "lively", seed=2)
    x1, y1, x2, y2 = faces[0].box.astype(int)
    assert all(np.array_equal(one.frame(i)[0][y1:y2, x1:x2], nobody.frame(i)[0][y1:y2, x1:x2]) for i in range(n))
    both = Motion(image, faces, {0: voice, 1: voice}, FPS, n, "lively", seed=2)
    spread = pose_spread(both)
    assert (spread > 0.4).all(), f"pose spread per face {spread.round(2)}"
    frames = [both.frame(i)[0] for i in range(0, n, 5)]
    assert all(np.array_equal(f[border], image[border]) for f in frames)
    # the two warps do not pull at each other: each face moves in the pair as it moves when it speaks alone
    for k, f in enumerate(faces):
        alone = Motion(image, faces, {k: voice}, FPS, n, "lively", seed=2)
        x1, y1, x2, y2 = f.box
        dx, dy = 0.2 * (x2 - x1), 0.2 * (y2 - y1)
        inner = (slice(int(y1 + dy), int(y2 - dy)), slice(int(x1 + dx), int(x2 - dx)))
        for j, i in enumerate(range(0, n, 5)):
            diff = np.abs(frames[j][inner].astype(np.int16) - alone.frame(i)[0][inner]).mean()
            assert diff < 2.0, f"face {k} frame {i}: moves differently beside the other speaker ({diff:.1f})"


def test_same_seed_same_frames_other_seed_other_frames():
    image = read_image(HOST)
    face = face_of(image)
    n = 3 * FPS
    voice = voice_of(speech(3), 0, FPS, n)
    a, b = (Motion(image, [face], {0: voice}, FPS, n, "natural", seed=5) for _ in range(2))
    c = Motion(image, [face], {0: voice}, FPS, n, "natural", seed=6)
    idx = range(0, n, 7)
    assert all(np.array_equal(a.frame(i)[0], b.frame(i)[0]) for i in idx)
    assert any(not np.array_equal(a.frame(i)[0], c.frame(i)[0]) for i in idx)


def test_animate_moves_a_photo_and_keeps_its_mouth_shut_in_silence(tmp_path, meter, capsys):
    """End to end with the viseme engine: speech after 1.7 s of silence, written losslessly."""
    audio = load_audio(DATA / "viseme" / "long_silence_12s.flac", sr=16000)[int(3.0 * 16000): int(6.0 * 16000)]
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, audio, 16000)
    out = tmp_path / "frames" / "%04d.png"
    assert main(["animate", str(HOST), str(wav), "-o", str(out), "-q", "--seed", "3"]) == 0
    assert "motion: natural" in capsys.readouterr().err
    image = read_image(HOST)
    face = face_of(image)
    model = meter.points(image, face.box)
    border = border_mask(image.shape)
    poses, opening = [], []
    for i, path in enumerate(sorted((tmp_path / "frames").glob("*.png"))):
        frame = np.asarray(Image.open(path).convert("RGB"))
        assert np.array_equal(frame[border], image[border]), f"border changed in frame {i}"
        if i % 3 == 0:
            p = meter.points(frame, face.box)
            poses.append(head_pose(model, p))
            opening.append((i, np.linalg.norm(p[14, :2] - p[13, :2]) / np.linalg.norm(p[152, :2] - p[168, :2])))
    assert np.std(poses, axis=0).max() > 0.4, "the head did not move"
    silent = [o for i, o in opening if i < 1.5 * FPS]
    assert max(silent) < 0.05, f"mouth open in silence: {max(silent):.3f}"


def test_motion_flag_with_a_video_says_it_is_for_photos(tmp_path, capsys):
    clip = DATA / "pipeline" / "talk_2s.mp4"
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, load_audio(SPEECH, sr=16000)[:16000], 16000)
    assert main(["animate", str(clip), str(wav), "-o", str(tmp_path / "out.mp4"), "-q", "--motion", "lively"]) == 0
    err = capsys.readouterr().err
    assert err.count("--motion applies to photos only") == 1
    assert sum(1 for _ in iter_frames(tmp_path / "out.mp4")) == 25


def test_motion_sheet_command(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, speech(5), 16000)
    assert main(["motion", str(HOST), str(wav), "-o", str(out), "--tile", "96"]) == 0
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[1] >= 8 * 96 and sheet.shape[0] > 2 * 96  # head row, blink row, curves
    assert main(["motion", str(SPEECH), str(wav), "-o", str(out)]) == 1
    assert "is not a photo" in capsys.readouterr().err


def test_wav2lip_engine_draws_on_the_moving_head(tmp_path, meter):
    """The neural engine (deterministic protocol weights) gets the moved frame and face: the head turns,
    the border stays, and the generated mouth lands inside the moved face's lower half."""
    from lipdub.engines.wav2lip.protocol import write_protocol_checkpoint

    ckpt = tmp_path / "protocol.pth"
    write_protocol_checkpoint(ckpt, kind="wav2lip")
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, speech(1.0), 16000)
    out = tmp_path / "frames" / "%04d.png"
    assert main(["animate", str(HOST), str(wav), "-o", str(out), "-q", "--engine", "wav2lip", "--checkpoint",
                 str(ckpt), "--device", "cpu", "--motion", "lively", "--silence", "animate"]) == 0
    image = read_image(HOST)
    face = face_of(image)
    model = meter.points(image, face.box)
    border = border_mask(image.shape)
    poses = []
    for path in sorted((tmp_path / "frames").glob("*.png"))[::3]:
        frame = np.asarray(Image.open(path).convert("RGB"))
        assert np.array_equal(frame[border], image[border])
        p = meter.points(frame, face.box)
        poses.append(head_pose(model, p))
        changed = np.abs(frame.astype(np.int16) - image).max(-1) > 40
        ys, xs = np.nonzero(changed)
        assert len(ys) and np.median(ys) > p[1, 1], "the largest changes (the mouth) are below the nose"
    assert np.std(poses, axis=0).max() > 0.4
