"""`lipdub batch`: every job of a JSON-lines file runs (local processes or Ray), a failed job is reported and does
not stop the others, a second run skips what is up to date, a bad line is one error naming file and line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lipdub import media
from lipdub.cli import main

DATA = Path(__file__).parent / "data"
PORTRAITS = DATA / "viseme" / "portraits"
INPUTS = {  # small photos and ~2 s of speech, so a viseme job takes seconds
    "woman.jpg": PORTRAITS / "img_eastasian_woman_closed_mouth.jpg",
    "man.jpg": PORTRAITS / "img_obama_smile_teeth.jpg",
    "cartoon.jpg": DATA / "faces" / "neg_no_human_face_cartoon.jpg",  # no human face: that job must fail
    "speech1.flac": DATA / "mix" / "flemish_vl09647_22k.flac",
    "speech2.flac": DATA / "mix" / "flemish_vl00203_22k.flac",
}


def _folder(tmp_path: Path, lines: list[dict | str]) -> Path:
    """A jobs folder: the inputs copied beside jobs.jsonl (paths in the lines are relative to it)."""
    folder = tmp_path / "jobs"
    folder.mkdir()
    for name, src in INPUTS.items():
        shutil.copy(src, folder / name)
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    (folder / "jobs.jsonl").write_text(text + "\n")
    return folder / "jobs.jsonl"


def _batch(capsys, jobs: Path, out: Path, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["batch", str(jobs), "-o", str(out), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _speech_seconds(path: Path) -> float:
    return len(media.load_audio(path)) / media.SAMPLE_RATE


def _check_talking(video: Path, speech_s: float) -> None:
    """A real video with the speech's length and sound, whose picture changes (the mouth moves)."""
    info = media.probe(video)
    assert info.kind == "video" and info.has_audio
    assert abs(info.duration - speech_s) <= 1 / 25 + 0.05
    frames = list(media.iter_frames(video))
    assert max(np.abs(f.astype(np.int16) - frames[0]).mean() for f in frames) > 0.2


def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.rglob(".*tmp*")]


GOOD_AND_BAD = [
    {"media": "woman.jpg", "audio": "speech1.flac", "engine": "viseme", "output": "woman.mp4"},
    {"media": "man.jpg", "audio": "speech2.flac", "engine": "viseme"},  # output named from the line
    {"media": "cartoon.jpg", "audio": "speech2.flac", "engine": "viseme", "output": "cartoon.mp4"},
]


@pytest.mark.slow  # three batch runs, four renders (160 s on a heavily loaded 2-core machine)
def test_local_processes_run_all_jobs_report_the_bad_one_and_resume(tmp_path, capsys):
    jobs, out = _folder(tmp_path, GOOD_AND_BAD), tmp_path / "out"
    code, rep = _batch(capsys, jobs, out, "-j", "2")
    assert code == 1  # a job failed
    assert [(j["line"], j["status"]) for j in rep["jobs"]] == [(1, "done"), (2, "done"), (3, "failed")]
    assert "cartoon.jpg: no face found" in rep["jobs"][2]["error"]
    assert not (out / "cartoon.mp4").exists() and not _leftovers(out)
    derived = out / "man-speech2.mp4"
    assert rep["jobs"][1]["output"] == str(derived)
    _check_talking(out / "woman.mp4", _speech_seconds(INPUTS["speech1.flac"]))
    _check_talking(derived, _speech_seconds(INPUTS["speech2.flac"]))

    # a second run skips both finished jobs (their files untouched) and tries the failed one again
    made = {p: p.stat().st_mtime_ns for p in (out / "woman.mp4", derived)}
    code, rep = _batch(capsys, jobs, out, "-j", "2")
    assert [j["status"] for j in rep["jobs"]] == ["skipped", "skipped", "failed"]
    assert {p: p.stat().st_mtime_ns for p in made} == made

    # new content in an input (same name) makes its job run again; the other stays skipped
    shutil.copy(INPUTS["speech2.flac"], jobs.parent / "speech1.flac")
    code, rep = _batch(capsys, jobs, out, "-j", "1")
    assert [j["status"] for j in rep["jobs"]] == ["done", "skipped", "failed"]
    _check_talking(out / "woman.mp4", _speech_seconds(INPUTS["speech2.flac"]))
    assert derived.stat().st_mtime_ns == made[derived]


@pytest.mark.slow
def test_jobs_run_on_a_local_ray_instance_and_a_second_run_skips_them(tmp_path, capsys, ray_local):
    lines = [GOOD_AND_BAD[0], GOOD_AND_BAD[2],  # several speakers as the REST API sends them, starting at 0.5 s
             {"media": "man.jpg", "speakers": [{"audio": "speech2.flac", "start": 0.5}], "engine": "viseme",
              "output": "late.mp4"}]
    jobs, out = _folder(tmp_path, lines), tmp_path / "out"
    code, rep = _batch(capsys, jobs, out, "--ray", "local", "-j", "2")
    assert code == 1
    assert [j["status"] for j in rep["jobs"]] == ["done", "failed", "done"]
    assert "no face found" in rep["jobs"][1]["error"]
    _check_talking(out / "woman.mp4", _speech_seconds(INPUTS["speech1.flac"]))
    _check_talking(out / "late.mp4", 0.5 + _speech_seconds(INPUTS["speech2.flac"]))
    code, rep = _batch(capsys, jobs, out, "--ray", "local", "-j", "2")
    assert [j["status"] for j in rep["jobs"]] == ["skipped", "failed", "skipped"]


@pytest.mark.slow
def test_ctrl_c_leaves_finished_jobs_and_no_partial_output_and_the_next_run_resumes(tmp_path, capsys):
    long_speech = Path(__file__).parent.parent / "examples" / "speech_nl.wav"  # 4 s: still rendering at Ctrl+C
    jobs = _folder(tmp_path, [GOOD_AND_BAD[0], {"media": "man.jpg", "audio": "long.wav", "engine": "viseme",
                                                "output": "long.mp4"}])
    shutil.copy(long_speech, jobs.parent / "long.wav")
    out = tmp_path / "out"
    # Ctrl+C's SIGINT at its default, as a terminal gives it: a parent that ignores SIGINT (a background job of a
    # non-interactive shell, nohup) hands the ignoring on through exec, and Python never raises KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "lipdub", "batch", str(jobs), "-o", str(out), "-j", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    states = out / ".lipdub-batch"
    deadline = time.monotonic() + 600
    while not (states.is_dir() and any(not p.name.startswith(".") for p in states.iterdir())):  # job 1 finished
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err
    assert (out / "woman.mp4").exists() and not (out / "long.mp4").exists() and not _leftovers(out)

    code, rep = _batch(capsys, jobs, out, "-j", "1")
    assert code == 0 and [j["status"] for j in rep["jobs"]] == ["skipped", "done"]
    _check_talking(out / "long.mp4", _speech_seconds(long_speech))


@pytest.mark.parametrize("line, problem", [
    ('{"media": "man.jpg", "audio": "speech1.flac"', "not JSON"),
    ('["man.jpg", "speech1.flac"]', "expected a JSON object"),
    ({"media": "man.jpg", "audio": "speech1.flac", "engin": "viseme"}, "engin: Extra inputs are not permitted"),
    ({"media": "man.jpg", "audio": "speech1.flac", "engine": "neural"}, "engine: Input should be"),
    ({"media": "man.jpg"}, "give either audio or speakers"),
    ({"media": "man.jpg", "audio": "speech1.flac", "output": "woman.mp4"}, "also line 1's output"),
    ({"media": "man.jpg", "audio": "speech1.flac", "output": "frames/%05d.png"}, "a .mp4, .mov or .mkv file"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, capsys, line, problem):
    jobs = _folder(tmp_path, [GOOD_AND_BAD[0], "", line])  # blank lines are allowed and still counted
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["batch", str(jobs), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lipdub: error: {jobs}:3: ") and problem in err and "\n" not in err
    assert not out.exists()  # nothing ran


def test_a_job_may_not_overwrite_its_input(tmp_path, capsys):
    line = {"media": "man.jpg", "audio": "speech.mkv", "output": "../jobs/speech.mkv"}
    jobs = _folder(tmp_path, [line])
    shutil.copy(INPUTS["speech1.flac"], jobs.parent / "speech.mkv")
    capsys.readouterr()
    assert main(["batch", str(jobs), "-o", str(tmp_path / "out")]) == 1
    assert f"{jobs}:1: output" in capsys.readouterr().err
    assert (jobs.parent / "speech.mkv").read_bytes() == INPUTS["speech1.flac"].read_bytes()


def test_a_jobs_file_takes_every_field_of_the_rest_api_job():
    """The README promises the REST API's job fields; a field added to the API must be accepted here too."""
    from lipdub.batch import JobLine, SpeakerLine
    from lipdub.web.schemas import JobIn, SpeakerIn

    assert set(JobIn.model_fields) <= set(JobLine.model_fields)
    assert set(SpeakerIn.model_fields) <= set(SpeakerLine.model_fields)


@pytest.mark.parametrize("name, value", [("motion", "lively"), ("seed", 3), ("text", "hallo"), ("lang", "nl")])
def test_motion_and_transcript_settings_reach_the_request(tmp_path, name, value):
    from lipdub.batch import read_jobs

    jobs = _folder(tmp_path, [{"media": "man.jpg", "audio": "speech1.flac", name: value}])
    assert getattr(read_jobs(jobs, tmp_path / "out")[0].request, name) == value
