"""`lipdub data filter --person`: the target is a person across shots, and reference photos are checked first."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lipdub import media
from lipdub.cli import main
from lipdub.data.filter import FilterConfig, filter_clips
from lipdub.data.store import write_json
from lipdub.hashing import file_sha256

FACES = Path(__file__).parent / "data" / "faces"
PAIR = FACES / "grp2_obama_biden_side_by_side.jpg"  # Obama left (face 0), Biden right (face 1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """One clip in `cut`'s layout: Obama in a wide shot, then a close-up (cut_same.mp4), silent audio."""
    root = tmp_path_factory.mktemp("clips")
    folder = root / "address"
    folder.mkdir()
    video = folder / "00000.mp4"
    shutil.copy(FACES / "cut_same.mp4", video)
    n = media.probe(video).num_frames
    media.write_audio(folder / "00000.wav", np.zeros(n * 640, np.float32), 16000)
    write_json(folder / "00000.json", {"source": "address", "clip": "00000", "start": 0.0, "end": n / 25,
                                       "n_frames": n, "sha256": file_sha256(video)})
    return root


def test_a_person_seen_in_two_shots_is_one_target(clips, tmp_path):
    report = filter_clips(clips, tmp_path, [f"{PAIR}:face=0"], FilterConfig(), workers=1)
    verdict = report["verdicts"][0]
    # two tracks (one per shot), each on screen half the time: only as one person is she visible >= 80%
    assert verdict["kept"], verdict
    assert verdict["visible"] == 1.0 and list(verdict["distances"]) == ["0"]


def test_a_reference_photo_of_someone_else_removes_the_clip(clips, tmp_path):
    report = filter_clips(clips, tmp_path, [f"{PAIR}:face=1"], FilterConfig(), workers=1)
    assert report["verdicts"][0]["reason"] == "other person"


def test_a_reference_photo_with_several_faces_must_say_which(clips, tmp_path, capsys):
    assert main(["data", "filter", str(clips), "--person", str(PAIR), "-o", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(PAIR) in err and "shows 2 faces" in err and f"{PAIR}:face=N" in err
    assert not (tmp_path / "out" / "report.json").exists()
    assert main(["data", "filter", str(clips), "--person", f"{PAIR}:face=7", "-o", str(tmp_path / "o2")]) != 0
    assert "has no face 7 (faces: 0, 1)" in capsys.readouterr().err


def test_a_missing_reference_photo_is_one_line(clips, tmp_path, capsys):
    missing = tmp_path / "nobody.jpg"
    assert main(["data", "filter", str(clips), "--person", str(missing), "-o", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip()
    assert err == f"lipdub: error: {missing}: file not found"
