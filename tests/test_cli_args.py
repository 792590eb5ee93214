"""Every flag works or says why in one line: bad values are usage errors (exit 2), ignored flags print a note,
and each documented LIPDUB_* variable reaches every command that uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lipdub import media
from lipdub.audio.speakers import SpeakerSpec
from lipdub.pipeline import AnimateRequest, ignored_options

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).parent.parent / "examples"
PORTRAIT = EXAMPLES / "portrait.jpg"
SPEECH = EXAMPLES / "speech_nl.wav"  # 4.17 s
VIDEO = DATA / "pipeline" / "talk_2s.mp4"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lipdub", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


A = ["animate", str(PORTRAIT), str(SPEECH)]
BAD = [  # (arguments, the flag the one error line must name)
    ([*A, "--duck", "-12"], "--duck"),
    ([*A, "--duck", "nan"], "--duck"),
    ([*A, "--batch-size", "0"], "--batch-size"),
    ([*A, "--batch-size", "-1"], "--batch-size"),
    ([*A, "--fps", "0"], "--fps"),
    ([*A, "--fps", "-25"], "--fps"),
    ([*A, "--fps", "inf"], "--fps"),
    ([*A, "--face", "-1"], "--face"),
    ([*A, "--face-at", "-5,3"], "--face-at"),
    ([*A, "--box", "10", "5", "0", "40"], "--box"),
    ([*A, "--speech-gain", "1e9"], "--speech-gain"),
    (["animate", str(PORTRAIT), "--speaker", f"audio={SPEECH},start=1000"], "--speaker"),
    (["animate", str(VIDEO), "--speaker", f"face=0,audio={SPEECH},start=3600"], "--speaker"),
    (["serve", "--workers", "0"], "--workers"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--max-upload-mb", "0"], "--max-upload-mb"),
    (["serve", "--device", "tpu"], "--device"),
    (["eval", "a.pth", "data", "--expert", "e.pth", "--batch-size", "0"], "--batch-size"),
    (["eval", "a.pth", "data", "--expert", "e.pth", "--vshift", "-1"], "--vshift"),
    (["shapes", str(PORTRAIT), "--tile", "8"], "--tile"),
    ([*A, "--seed", "-3"], "--seed"),
    (["batch", "jobs.jsonl", "-o", "out", "-j", "0"], "--workers"),
    (["cues", str(SPEECH), "--fps", "0"], "--fps"),
    (["faces", str(VIDEO), "--fps", "-1"], "--fps"),
    (["motion", str(PORTRAIT), str(SPEECH), "-o", "s.png", "--tile", "0"], "--tile"),
    (["serve", "--quota-jobs", "0"], "--quota-jobs"),
    (["serve", "--keep-days", "-1"], "--keep-days"),
    (["data", "cut", "in", "-o", "out", "--max-len", "0"], "--max-len"),
    (["data", "prepare", "in", "-o", "out", "--val-split", "1.5"], "--val-split"),
    (["data", "filter", "in", "--person", "p.jpg", "-o", "out", "--min-visible", "2"], "--min-visible"),
]


def in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`lipdub ARGS` in this process: (exit code, stderr) as `python -m lipdub` gives them."""
    from lipdub.cli import main

    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("args", "flag"), BAD, ids=[f"{a[0]} {flag}" for a, flag in BAD])
def test_bad_values_are_one_usage_line_with_exit_code_2(args, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = in_process(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (args, err)
    assert len(lines) == 1 and "Traceback" not in err, (args, err)
    assert flag in lines[0] and "error" in lines[0], (args, lines[0])
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_bad_value_is_one_line_and_exit_code_2_from_the_real_command():
    """The same as a process: the first error is argparse's (at parsing), the second found after it."""
    for args, flag in (BAD[4], BAD[0]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert flag in proc.stderr, proc.stderr


def test_a_bad_environment_variable_is_one_line_naming_it():
    proc = run_cli("cache", "info", env={"LIPDUB_BATCH_SIZE": "0"})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "LIPDUB_BATCH_SIZE" in proc.stderr
    proc = run_cli("serve", env={"LIPDUB_WEB_WORKERS": "0"})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "LIPDUB_WEB_WORKERS" in proc.stderr


def test_options_that_cannot_apply_say_so_on_a_photo(tmp_path):
    wav = tmp_path / "one_second.wav"
    media.write_audio(wav, media.load_audio(SPEECH)[:16000], 16000)
    out = tmp_path / "out.mp4"
    proc = run_cli("animate", str(PORTRAIT), str(wav), "-o", str(out), "-q", "--engine", "viseme",
                   "--silence", "rest", "--batch-size", "4", "--mix", "original", "--duck", "6",
                   "--keep-video-length")
    assert proc.returncode == 0, proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if ln.startswith("note:")]
    for flag in ("--silence", "--batch-size", "--mix original", "--duck", "--keep-video-length"):
        assert sum(flag in n for n in notes) == 1, (flag, notes)
    assert media.probe(out).num_frames == 25  # and the run itself is what it would be without them


def test_a_video_without_sound_notes_the_mix_options(tmp_path):
    silent = AnimateRequest(media=VIDEO, output=tmp_path / "o.mp4", speakers=[SpeakerSpec(SPEECH)],
                            mix="original", duck_db=6.0, original_gain_db=-3.0)
    notes = ignored_options(silent, "wav2lip", still=False, has_audio=False)
    assert [n.split()[1] for n in notes] == ["--mix", "--duck", "--original-gain"]
    assert ignored_options(silent, "wav2lip", still=False, has_audio=True) == []  # with sound they all apply
    replaced = AnimateRequest(media=VIDEO, output=tmp_path / "o.mp4", duck_db=6.0)
    assert ["--duck" in n for n in ignored_options(replaced, "wav2lip", still=False, has_audio=True)] == [True]
    english = AnimateRequest(media=VIDEO, output=tmp_path / "o.mp4", lang="en")
    assert ["--lang" in n for n in ignored_options(english, "wav2lip", still=False, has_audio=True)] == [True]
    assert ignored_options(english, "viseme", still=False, has_audio=True) == []


# ------------------------------------------------------------------------------------------ settings


def test_lipdub_device_reaches_animate_train_eval_and_the_web_app(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA: LIPDUB_DEVICE=cuda must then fail in one line")
    env = {"LIPDUB_DEVICE": "cuda"}
    cases = [
        ["animate", str(PORTRAIT), str(SPEECH), "-o", str(tmp_path / "o.mp4"), "-q"],
        ["train", "expert", str(tmp_path / "data"), "-o", str(tmp_path / "run")],
        ["eval", str(tmp_path / "g.pth"), str(tmp_path / "data"), "--expert", str(tmp_path / "e.pth")],
        ["serve", "--port", "0"],
    ]
    with ThreadPoolExecutor(4) as pool:
        procs = list(pool.map(lambda args: run_cli(*args, env=env), cases))
    for args, proc in zip(cases, procs, strict=True):
        assert proc.returncode == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "cuda" in proc.stderr.splitlines()[-1], (args, proc.stderr)
    proc = run_cli("animate", str(PORTRAIT), str(SPEECH), "--device", "cuda", "-o", str(tmp_path / "o.mp4"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no CUDA device" in proc.stderr, proc.stderr
    # an explicit flag wins over the variable: this run gets past the device to the missing audio file
    proc = run_cli("animate", str(PORTRAIT), str(tmp_path / "missing.wav"), "--device", "cpu", env=env)
    assert proc.returncode == 1 and "missing.wav" in proc.stderr.splitlines()[-1], proc.stderr


def test_lipdub_home_checkpoint_batch_size_and_threads_take_effect(tmp_path):
    home = tmp_path / "home"
    proc = run_cli("cache", "info", env={"LIPDUB_HOME": str(home)})
    assert str(home) in proc.stdout
    proc = run_cli("weights", "list", env={"LIPDUB_HOME": str(home)})
    assert f"weights folder: {home / 'weights'}" in proc.stdout
    # the configured checkpoint makes the default engine wav2lip (here: a file that is not there)
    proc = run_cli("animate", str(PORTRAIT), str(SPEECH), "-o", str(tmp_path / "o.mp4"),
                   env={"LIPDUB_CHECKPOINT": str(tmp_path / "mine.pth")})
    assert proc.returncode == 1 and "mine.pth" in proc.stderr.splitlines()[-1]
    from lipdub.engines.wav2lip.protocol import write_protocol_checkpoint

    ckpt = tmp_path / "w.pth"
    write_protocol_checkpoint(ckpt, kind="wav2lip")
    code = ("from lipdub.engines.wav2lip import Wav2LipEngine; import sys, torch; "
            "print(Wav2LipEngine(sys.argv[1], device='cpu').batch_size, torch.get_num_threads())")
    proc = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True,
                          env={**os.environ, "LIPDUB_BATCH_SIZE": "3", "LIPDUB_THREADS": "1"}, timeout=300)
    assert proc.stdout.split() == ["3", "1"], proc.stderr  # the generator batch and the CPU threads


def test_web_settings_follow_their_variables(monkeypatch):
    from lipdub.cli import build_parser
    from lipdub.cli.serve import settings_from_args

    monkeypatch.setenv("LIPDUB_WEB_WORKERS", "3")
    monkeypatch.setenv("LIPDUB_WEB_DEVICE", "cpu")
    s = settings_from_args(build_parser().parse_args(["serve"]))
    assert (s.workers, s.device) == (3, "cpu")
    assert settings_from_args(build_parser().parse_args(["serve", "--workers", "2"])).workers == 2


# ------------------------------------------------------------------------------------------ weights names


@pytest.mark.parametrize("given", ["wav2lip_gan", "wav2lip_gan.pth"])
def test_weights_names_resolve_with_or_without_pth(given, lipdub_home, tmp_path, monkeypatch):
    from lipdub.engines.wav2lip.weights import resolve_checkpoint, weights_path

    monkeypatch.chdir(tmp_path)  # not where the weights are
    stored = weights_path("wav2lip_gan")
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"x")
    assert resolve_checkpoint(given) == stored
    assert resolve_checkpoint(tmp_path / "wav2lip_gan.pth") == tmp_path / "wav2lip_gan.pth"  # a path stays one
    (tmp_path / "wav2lip_gan.pth").write_bytes(b"y")
    assert resolve_checkpoint("wav2lip_gan.pth") == Path("wav2lip_gan.pth")  # a file here wins


def test_train_and_eval_take_weights_names_too(tmp_path):
    env = {"LIPDUB_HOME": str(tmp_path / "home")}
    for args in (["train", "generator", str(tmp_path), "-o", str(tmp_path / "run"), "--init", "wav2lip_gan.pth",
                  "--expert", str(tmp_path / "e.pth")],
                 ["eval", "wav2lip_gan", str(tmp_path), "--expert", "lipsync_expert.pth"]):
        proc = run_cli(*args, env=env)
        assert proc.returncode == 1 and "lipdub weights fetch" in proc.stderr, proc.stderr
