"""Edited video: tracks end at cuts, tracks group into persons, and only the chosen person is changed.

The clips (tests/data/faces/cut_*.mp4, made by make_cuts.py from the shared talking-head videos) are cut as an
editor would: woman | man | woman; a woman and a man side by side who swap sides at a cut, then she leaves
for a shot and comes back; one man in a wide shot then a close-up. Persons are checked against where each
real person is in the frame; the animation is checked on lossless PNG output against the decoded input.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from lipdub.cli import main
from lipdub.faces import analyze, crop_box
from lipdub.faces.shots import ShotDetector
from lipdub.media import iter_frames

DATA = Path(__file__).parent / "data" / "faces"
SPEECH = Path(__file__).parent / "data" / "viseme" / "dutch_vl04108.flac"
CUTS = {"cut_aba.mp4": [0, 25, 50], "cut_swap.mp4": [0, 25, 50, 75], "cut_same.mp4": [0, 38]}


def faces_json(clip: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["faces", str(DATA / clip), "--json", "--no-preview"]) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def reports() -> dict[str, dict]:
    """What `lipdub faces --json` reports for each clip (the analyses stay in the test run's face cache)."""
    return {clip: faces_json(clip) for clip in CUTS}


def test_shot_boundaries_are_the_edits(reports):
    for clip, cuts in CUTS.items():
        assert reports[clip]["shots"] == cuts, clip
        for person in reports[clip]["faces"]:
            for track in person["tracks"]:  # a track never continues across a cut
                starts = [c for c in cuts if c <= track["first_frame"]]
                shot_end = next((c for c in cuts if c > track["first_frame"]), reports[clip]["frames"])
                assert track["shot"] == len(starts) - 1 and track["last_frame"] < shot_end, (clip, track)


def test_woman_man_woman_is_two_people_and_she_is_one_of_them(reports):
    report = reports["cut_aba.mp4"]
    persons = {p["id"]: [t["shot"] for t in p["tracks"]] for p in report["faces"]}
    assert sorted(persons.values()) == [[0, 2], [1]], persons
    woman = next(p for p, shots in persons.items() if shots == [0, 2])
    assert report["default"] == woman, "on screen longest"


def test_people_swapping_sides_keep_their_person_and_she_comes_back(reports):
    report = reports["cut_swap.mp4"]
    tracks = analyze(DATA / "cut_swap.mp4")
    assert len(report["faces"]) == 2

    def side(person: int, frame: int) -> str | None:
        face = tracks.face(person, frame)
        return None if face is None else ("left" if (face.box[0] + face.box[2]) / 2 < 160 else "right")

    woman, man = (f.person_id for f in tracks.faces_in(0))  # she starts on the left
    assert [side(woman, i) for i in (5, 30, 60, 80)] == ["left", "right", None, "left"]
    assert [side(man, i) for i in (5, 30, 80)] == ["right", "left", "right"] and side(man, 60) is not None
    shots = {p["id"]: [t["shot"] for t in p["tracks"]] for p in report["faces"]}
    assert shots == {woman: [0, 1, 3], man: [0, 1, 2, 3]}


def test_two_shots_of_one_person_are_one_person_with_two_tracks(reports):
    report = reports["cut_same.mp4"]
    assert [p["id"] for p in report["faces"]] == [0]
    assert [(t["shot"], t["first_frame"], t["last_frame"]) for t in report["faces"][0]["tracks"]] == [
        (0, 0, 37), (1, 38, 75)]


def _animate(tmp_path: Path, clip: str, *face_args: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    out = tmp_path / clip / "%05d.png"
    assert main(["animate", str(DATA / clip), str(SPEECH), "-o", str(out), "--engine", "viseme", *face_args]) == 0
    from lipdub.media import read_image

    source = list(iter_frames(DATA / clip))
    frames = [read_image(p) for p in sorted(out.parent.glob("*.png"))[: len(source)]]
    return source, frames


def _check_only_the_person_changes(clip: str, person: int, source: list[np.ndarray], frames: list[np.ndarray]
                                   ) -> dict[int, float]:
    """Frames without the person are bit-identical, and so is every other face and everything but the person's
    face (its crop box, grown by a quarter). Returns each frame's mouth change."""
    tracks = analyze(DATA / clip)
    change = {}
    for i, (a, b) in enumerate(zip(source, frames, strict=True)):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
        face = tracks.face(person, i)
        if face is None:
            assert not diff.any(), f"{clip} frame {i}: changed although the person is not on screen"
            continue
        for other in tracks.faces_in(i):
            if other.person_id != person:
                top, bottom, left, right = crop_box(other, a.shape)
                assert not diff[top:bottom, left:right].any(), f"{clip} frame {i}: face {other.person_id} changed"
        top, bottom, left, right = crop_box(face, a.shape)
        m = round(0.25 * (bottom - top))  # the viseme engine's jaw drop may reach below the crop, onto the neck
        outside = diff.copy()
        outside[max(0, top - m):bottom + m, max(0, left - m):right + m] = 0
        assert not outside.any(), f"{clip} frame {i}: pixels outside the chosen face changed"
        lips = face.landmarks[[61, 291, 0, 17]]  # mouth corners, upper and lower lip
        x1, y1 = np.floor(lips.min(0)).astype(int)
        x2, y2 = np.ceil(lips.max(0)).astype(int)
        change[i] = float(diff[y1:y2 + 1, x1:x2 + 1].mean())
    return change


def _animated_in_every_shot(change: dict[int, float], cuts: list[int], n: int) -> None:
    """In every shot the person is in, the mouth was redrawn in most frames, right up to and from the cut."""
    for k, start in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else n
        shown = [i for i in range(start, end) if i in change]
        if not shown:
            continue
        moved = [i for i in shown if change[i] > 1.0]
        assert len(moved) >= 0.7 * len(shown), (start, [round(change[i], 1) for i in shown])
        edge = shown[:4] + shown[-4:]
        assert sum(change[i] > 1.0 for i in edge) >= 5, ("not animated next to the cut", start)


def test_only_the_woman_changes_when_chosen_by_photo_across_swaps(reports, tmp_path):
    tracks = analyze(DATA / "cut_swap.mp4")
    woman = tracks.faces_in(0)[0].person_id
    source, frames = _animate(tmp_path, "cut_swap.mp4", "--face-like", str(DATA / "woman_ref.jpg"))
    change = _check_only_the_person_changes("cut_swap.mp4", woman, source, frames)
    assert not any(i in change for i in range(50, 75)), "she is not in the third shot"
    _animated_in_every_shot(change, CUTS["cut_swap.mp4"], len(source))


def test_woman_chosen_by_id_is_animated_in_both_her_shots_and_the_man_is_untouched(reports, tmp_path):
    report = reports["cut_aba.mp4"]
    woman = next(p["id"] for p in report["faces"] if len(p["tracks"]) == 2)
    source, frames = _animate(tmp_path, "cut_aba.mp4", "--face", str(woman))
    change = _check_only_the_person_changes("cut_aba.mp4", woman, source, frames)
    assert sorted(change) == list(range(25)) + list(range(50, 75))
    _animated_in_every_shot(change, CUTS["cut_aba.mp4"], len(source))


def test_default_speaker_is_animated_through_a_cut_to_a_close_up(reports, tmp_path):
    source, frames = _animate(tmp_path, "cut_same.mp4")
    change = _check_only_the_person_changes("cut_same.mp4", 0, source, frames)
    _animated_in_every_shot(change, CUTS["cut_same.mp4"], len(source))


def test_strength_is_a_hard_cut_at_a_shot_boundary():
    tracks = analyze(DATA / "cut_aba.mp4")
    woman = tracks.faces_in(0)[0].person_id
    s = tracks.strength(woman, fade_frames=3)
    assert s[24] == 1.0 and s[50] == 1.0, "full strength up to and from the cut: no fade reaches across it"
    assert not s[25:50].any()


def test_shot_detector_finds_a_dissolve_and_a_fade_but_not_motion():
    frames = list(iter_frames(DATA / "cut_aba.mp4"))
    a, b = frames[10].astype(np.float32), frames[30].astype(np.float32)
    dissolve = [((1 - w) * a + w * b).astype(np.uint8) for w in np.linspace(0, 1, 20)]
    black = np.zeros_like(frames[0])
    fade = [(a * w).astype(np.uint8) for w in np.linspace(1, 0, 10)] + [black] * 3
    fade += [(b * w).astype(np.uint8) for w in np.linspace(0, 1, 10)]
    pan = [np.roll(frames[10], 3 * k, axis=1) for k in range(40)]  # fast camera motion, one shot

    def cuts(seq: list[np.ndarray]) -> list[int]:
        det = ShotDetector(25)
        return [i for i, f in enumerate(seq) if det.step(f)]

    held = [frames[10]] * 15
    assert len(cuts(held + dissolve + [frames[30]] * 15)) == 1
    assert len(cuts(held + fade + [frames[30]] * 15)) == 1
    assert cuts(pan) == []
    assert cuts(frames) == CUTS["cut_aba.mp4"][1:]
