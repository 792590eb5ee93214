"""Tracking on video: stable ids through a crossing and an exit/return, smoothing, fades, the real clip."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from lipdub.faces import FaceSettings, analyze, detect_faces, select
from lipdub.faces.landmarks import LIPS
from lipdub.faces.smooth import LandmarkSmoother, OneEuroFilter
from lipdub.media import read_image

DATA = Path(__file__).parent / "data" / "faces"
W, H, N = 480, 270, 100
FACE_W = 110


def _face_sprite(name: str) -> np.ndarray:
    """A real face with hair and chin, FACE_W pixels wide."""
    from PIL import Image

    image = read_image(DATA / name)
    face = max(detect_faces(image), key=lambda f: f.area)
    cx, cy = (face.box[:2] + face.box[2:]) / 2
    side = 1.5 * max(face.width, face.height)
    crop = Image.fromarray(image).crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2),
                                        int(cy + side / 2)))
    return np.asarray(crop.resize((FACE_W, FACE_W), Image.Resampling.LANCZOS))


def _paths() -> dict[str, list[float | None]]:
    """True x centers per frame: A walks right, B walks left over A (crossing), A leaves and returns."""
    a, b = [], []
    for i in range(N):
        if i < 60:
            a.append(80 + 320 * i / 59)
            b.append(400 - 300 * i / 59)
        else:
            a.append(None if i < 80 else 370.0)
            b.append(100.0)
    return {"A": a, "B": b}


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> tuple[Path, dict[str, list[float | None]]]:
    path = tmp_path_factory.mktemp("faces") / "crossing.mp4"
    return path, make_crossing_video(path)


def make_crossing_video(path: Path) -> dict[str, list[float | None]]:
    """A 4 s video of two real faces (Obama = A, Biden = B on top) with a crossing and an exit/return."""
    sprites = {"A": _face_sprite("img_obama_smile_teeth.jpg"), "B": _face_sprite("img_biden_older_smile_teeth.jpg")}
    paths = _paths()
    rng = np.random.default_rng(0)
    background = (110 + rng.integers(0, 20, (H, W, 3))).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "18"}
        for i in range(N):
            frame = background.copy()
            for who in ("A", "B"):  # B drawn last: on top at the crossing
                x = paths[who][i]
                if x is not None:
                    x0, y0 = int(x - FACE_W / 2), H // 2 - FACE_W // 2
                    frame[y0:y0 + FACE_W, x0:x0 + FACE_W] = sprites[who]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return paths


@pytest.fixture(scope="module")
def crossing_tracks(crossing):
    path, _ = crossing
    # a short max_miss ends A's track while it is away: its return must be recognised by identity alone
    return analyze(path, use_cache=False, settings=FaceSettings(max_miss=8))


def _visible_alone(paths, who: str, i: int) -> bool:
    other = "B" if who == "A" else "A"
    x, y = paths[who][i], paths[other][i]
    return x is not None and (y is None or abs(x - y) > FACE_W)


def test_ids_stay_with_their_person_through_crossing_and_return(crossing, crossing_tracks):
    _, paths = crossing
    tracks = crossing_tracks
    first = tracks.faces_in(0)
    assert len(first) == 2 and [f.track_id for f in first] == [0, 1]  # left to right on the first frame
    ids = {"A": 0, "B": 1}
    assert tracks.track_ids == [0, 1], "a crossing or an exit must not create new ids"
    for i in range(N):
        for face in tracks.faces_in(i):
            who = "A" if face.track_id == ids["A"] else "B"
            cx = float(face.box[0] + face.box[2]) / 2
            assert paths[who][i] is not None and abs(cx - paths[who][i]) < 30, (i, who, cx)
    for who in ("A", "B"):
        alone = [i for i in range(N) if _visible_alone(paths, who, i)]
        found = [i for i in alone if tracks.face(ids[who], i) is not None]
        assert len(found) >= 0.85 * len(alone), (who, len(found), len(alone))
    assert all(tracks.face(ids["A"], i) is not None for i in range(88, N)), "A's return keeps its id"
    assert all(tracks.face(ids["A"], i) is None for i in range(62, 80)), "no A while A is away"


def test_default_choice_is_the_face_present_longest(crossing_tracks):
    chosen = select(crossing_tracks)
    assert chosen == 1
    assert "on screen longest" in chosen.reason and "of 2" in chosen.reason


def test_reference_photo_picks_the_right_person_in_video(crossing_tracks):
    assert select(crossing_tracks, like=DATA / "img_obama_smile_teeth.jpg") == 0
    assert select(crossing_tracks, like=DATA / "img_biden_older_smile_teeth.jpg") == 1


def test_strength_fades_around_a_gap_and_is_zero_inside(crossing_tracks):
    tracks = crossing_tracks
    s = tracks.strength(0, fade_frames=3)
    present = np.zeros(N, bool)
    present[tracks.frames_of(0)] = True
    assert np.all(s[~present] == 0)
    last = int(np.flatnonzero(present[:80])[-1])  # last frame before A leaves
    back = int(np.flatnonzero(present[80:])[0]) + 80
    assert s[last] < s[last - 1] < s[last - 2] < 1.0 and s[last - 3] == 1.0
    assert s[back] < s[back + 1] < s[back + 2] < 1.0 and s[back + 3] == 1.0
    assert s[0] == 1.0, "the start of the video is not a gap"


def test_strength_of_a_gapped_track_is_the_shared_fade_ramp_and_a_cut_stays_hard():
    """FaceTracks.strength and the pipeline's edit ramp are one ramp (media.fade): same values on a gapped track."""
    from lipdub.faces.tracks import FaceTracks
    from lipdub.media.fade import fade_weights

    n = 60
    frames = np.array([i for i in range(n) if not (10 <= i < 13 or i == 30 or 44 <= i < 50)], np.int32)
    k = len(frames)
    tracks = FaceTracks(n, 64, 64, frame_index=frames, track_index=np.zeros(k, np.int32),
                        boxes=np.tile(np.array([[1, 1, 20, 20]], np.float32), (k, 1)),
                        scores=np.ones(k, np.float32), landmarks=np.zeros((k, 478, 2), np.float32),
                        interpolated=np.zeros(k, bool), shot_starts=np.array([0, 40], np.int32))
    s = tracks.strength(0, fade_frames=3)
    present = np.isin(np.arange(n), frames)
    assert np.array_equal(s[:40], fade_weights(present[:40], 4))
    assert np.array_equal(s[40:], fade_weights(present[40:], 4))
    assert list(s[6:16]) == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0, 0.25, 0.5, 0.75]
    assert list(s[27:34]) == [0.75, 0.5, 0.25, 0.0, 0.25, 0.5, 0.75]  # frame 30 gap; the cut at 40 is no gap
    assert s[39] == s[40] == 1.0 and s[0] == s[n - 1] == 1.0


def test_real_clip_one_stable_track_with_full_landmarks():
    calls: list[tuple[int, int]] = []
    tracks = analyze(DATA / "vox_man_3s.mp4", use_cache=False, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (1, 75) and calls[-1] == (75, 75)
    assert tracks.num_frames == 75
    assert tracks.track_ids == [0]
    assert len(tracks.frames_of(0)) >= 72
    face = tracks.face(0, 10)
    assert face.landmarks.shape == (478, 2) and face.landmarks.dtype == np.float32
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 160


def test_frame_rate_is_respected():
    tracks = analyze(DATA / "vox_man_3s.mp4", fps=10, use_cache=False)
    assert tracks.num_frames == 30 and tracks.fps == 10


def _talking_head(n: int, speed: float, mouth: float, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Landmarks of a real 100 px face moving `speed` px/frame, mouth opening `mouth` px at 4 Hz, plus
    detector-like jitter (whole-face shifts and per-point noise). Returns (noisy, true, lower-lip ids)."""
    base = detect_faces(read_image(DATA / "img_obama_smile_teeth.jpg"))[0].landmarks.astype(np.float64)
    base = (base - base.mean(0)) * (100 / np.ptp(base[:, 0])) + 200
    lower_lip = [i for i in LIPS if base[i, 1] > base[[13, 14], 1].mean()]
    true = np.repeat(base[None], n, 0)
    t = np.arange(n)
    true[:, lower_lip, 1] += mouth * np.sin(2 * np.pi * 4 * t / 25)[:, None]
    true[:, :, 0] += speed * t[:, None]
    noisy = true + rng.normal(0, 0.6, (n, 1, 2)) + rng.normal(0, 0.3, true.shape)
    return noisy, true, lower_lip


def test_smoothing_removes_jitter_without_lag_and_keeps_the_mouth_moving():
    rng = np.random.default_rng(1)
    noisy, true, _ = _talking_head(200, 0.0, 0.0, rng)
    f = LandmarkSmoother(25)
    out = np.array([f(p) for p in noisy])
    assert (out[50:] - true[50:]).std() < 0.65 * (noisy[50:] - true[50:]).std(), "jitter at rest"
    noisy, true, _ = _talking_head(80, 4.0, 0.0, rng)  # 100 px/s
    f.reset()
    out = np.array([f(p) for p in noisy])
    assert abs((true[30:, :, 0] - out[30:, :, 0]).mean()) < 2.0, "lags by half a frame of motion or more"
    noisy, true, lower_lip = _talking_head(100, 0.0, 4.0, rng)
    f.reset()
    out = np.array([f(p) for p in noisy])
    kept = out[40:, lower_lip, 1].std(0).mean() / true[40:, lower_lip, 1].std(0).mean()
    assert kept > 0.85, f"the mouth keeps only {kept:.0%} of its motion"


def test_one_euro_follows_a_ramp():
    f = OneEuroFilter(25, min_cutoff=1.0, beta=0.05)
    out = [f(np.array([4.0 * i])) for i in range(60)]
    assert 4.0 * 59 - out[-1][0] < 4.0


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "18"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_after_a_cut_every_small_face_of_the_new_shot_is_found_soon(tmp_path):
    group = read_image(DATA / "grp6_many_faces_friends.jpg")  # six ~100 px faces, some turned
    h, w = group.shape[:2]
    portrait = np.full_like(group, 100)
    face = read_image(DATA / "img_obama_smile_teeth.jpg")
    portrait[100:100 + face.shape[0], 400:400 + face.shape[1]] = face
    path = tmp_path / "cut.mp4"
    _write_video(path, [portrait] * 30 + [group] * 30)
    tracks = analyze(path, use_cache=False)
    assert len(tracks.faces_in(10)) == 1
    assert len(tracks.faces_in(40)) == 6 and len(tracks.faces_in(59)) == 6
    assert len(tracks.track_ids) == 7


def test_short_misses_are_interpolated_and_long_gaps_are_not():
    from lipdub.faces.tracker import fill_gaps
    from lipdub.faces.types import Face

    def face(x: float) -> Face:
        lm = np.zeros((478, 2), np.float32) + [x, 10.0]
        lm[0] += 20
        return Face(box=np.array([x, 10, x + 20, 30], np.float32), landmarks=lm, track_id=3)

    frames = [[face(0)], [], [], [face(30)], [], [], [], [], [], [face(90)]]
    fill_gaps(frames, max_gap=3)
    assert [len(f) for f in frames] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    assert frames[1][0].extra["interpolated"] and float(frames[1][0].landmarks[5, 0]) == pytest.approx(10.0)
    assert float(frames[2][0].box[0]) == pytest.approx(20.0)
