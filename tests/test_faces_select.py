"""Default speaker by evidence (never by size alone), and grouping tracks into persons (fast: no detection)."""

from __future__ import annotations

import numpy as np
import pytest

from lipdub.faces import FaceTracks, NoFaceError, select
from lipdub.faces.persons import group_tracks
from lipdub.faces.types import Face

W, H = 640, 360


def _face(track: int, x: float, side: float, score: float) -> Face:
    lm = np.zeros((478, 2), np.float32) + [x + side / 2, 100 + side / 2]
    return Face(box=np.array([x, 100, x + side, 100 + side], np.float32), score=score, landmarks=lm, track_id=track)


def test_a_large_weak_face_does_not_beat_a_real_one_on_a_still():
    # a 200 px box with a weak score (a blurred background shape) and a 110 px face the detector is sure of
    tracks = FaceTracks.from_faces([[_face(0, 20, 200, 0.55), _face(1, 400, 110, 0.97)]], width=W, height=H)
    chosen = select(tracks)
    assert chosen == 1 and "clearest" in chosen.reason


def test_the_person_on_screen_longest_speaks_and_tiny_faces_count_less():
    frames = [[_face(0, 20, 120, 0.9)] + ([_face(1, 400, 120, 0.9)] if i < 60 else []) for i in range(100)]
    assert select(FaceTracks.from_faces(frames, width=W, height=H)) == 0
    # a face too small to animate (20 px) on screen all the time loses to a usable one on screen 60% of it
    frames = [[_face(0, 20, 20, 0.9)] + ([_face(1, 400, 120, 0.9)] if i < 60 else []) for i in range(100)]
    assert select(FaceTracks.from_faces(frames, width=W, height=H)) == 1


def test_persons_are_what_select_and_strength_work_on():
    # shot 0: track 0 (A); shot 1 from frame 10: track 1 (B); shot 2 from frame 20: track 2 (A again)
    frames = [[_face(0 if i < 10 else 1 if i < 20 else 2, 100, 100, 0.9)] for i in range(30)]
    tracks = FaceTracks.from_faces(frames, width=W, height=H, persons={0: 0, 1: 1, 2: 0},
                                   shot_starts=np.array([0, 10, 20], np.int32))
    assert tracks.person_ids == [0, 1] and tracks.tracks_of(0) == [0, 2]
    assert tracks.face(0, 25).track_id == 2 and tracks.face(0, 15) is None
    rows = tracks.person_summary()
    assert [(r["id"], r["frames"]) for r in rows] == [(0, 20), (1, 10)]
    assert [(t["id"], t["shot"], t["first_frame"], t["last_frame"]) for t in rows[0]["tracks"]] == [
        (0, 0, 0, 9), (2, 2, 20, 29)]
    assert select(tracks) == 0 and "on screen longest (20 of 30 frames)" in select(tracks).reason
    s = tracks.strength(0, fade_frames=3)
    assert s[:10].tolist() == [1.0] * 10 and s[20:].tolist() == [1.0] * 10, "shot edges are hard cuts, no fade"
    assert not s[10:20].any()
    with pytest.raises(NoFaceError, match="there is no face 2 \\(faces: 0, 1\\)"):
        select(tracks, face_id=2)


def test_grouping_never_joins_tracks_seen_together_and_respects_the_threshold():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 128), rng.normal(0, 1, 128)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    emb = {0: a, 1: b, 2: a + 0.01, 3: a + 0.02, 4: b + 0.01}
    # tracks 0 and 1 together in shot 0; 2 alone in shot 1; 3 and 4 together in shot 2
    frames = [[Face(box=np.zeros(4), track_id=t) for t in ids] for ids in [[0, 1]] * 5 + [[2]] * 5 + [[3, 4]] * 5]
    asked: list[int] = []

    def embed(t: int) -> np.ndarray:
        asked.append(t)
        return emb[t].astype(np.float32)

    assert group_tracks([0, 1, 2, 3, 4], embed, frames, 0.45) == {0: 0, 2: 0, 3: 0, 1: 1, 4: 1}
    # a look-alike seen in the same frame as A stays someone else
    emb[1] = a + 0.005
    assert group_tracks([0, 1, 2, 3, 4], embed, frames, 0.45)[1] != 0
    # one shot of people always together: nobody needs an embedding
    asked.clear()
    assert group_tracks([0, 1], embed, frames[:5], 0.45) == {0: 0, 1: 1} and asked == []
