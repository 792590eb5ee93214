"""Run control through the CLI: a SIGTERM mid-run resumes exactly, old checkpoints are pruned, runs are not
restarted over by mistake, and training without validation needs asking for.

The dataset is test_train's tiny one (one speaker's 4-second clips, tests/data/train/); the expert trains at
batch 2 without validation (--no-val), so each run is a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train import build_dataset, lipdub, metrics

RUN = ["--batch-size", 2, "--log-interval", 1, "--num-workers", 0, "--device", "cpu", "--no-progress", "--no-val"]
SRC = Path(__file__).parent.parent / "src"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("run") / "dataset", speakers=("man",))


def _train_rows(run: Path) -> list[dict[str, float]]:
    return metrics(run, "train") if (run / "metrics.csv").is_file() else []


def _sigterm_after(args: list[object], run: Path, steps: int) -> tuple[int, str]:
    """Start `lipdub train ...` in its own process, send SIGTERM once `steps` steps are logged (the process
    is then inside a step: that is where nearly all its time goes); return (exit code, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "lipdub", *map(str, args)], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    try:
        deadline = time.time() + 300
        while len(_train_rows(run)) < steps and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, err


def _checkpoint(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)


def test_sigterm_mid_run_leaves_a_last_pth_that_resumes_exactly(dataset: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    stopped = tmp_path / "stopped"
    code, err = _sigterm_after(["train", "expert", dataset, "-o", stopped, *RUN, "--max-steps", 1000], stopped, 3)
    assert code == 128 + signal.SIGTERM, err[-2000:]
    n = len(_train_rows(stopped))  # the step under way when the signal came was finished, then it stopped
    assert n >= 3 and f"stopped by SIGTERM after step {n}" in err and "--resume" in err
    saved = _checkpoint(stopped / "last.pth")
    assert saved["global_step"] == n and {int(s["step"]) for s in saved["optimizer"]["state"].values()} == {n}

    # the same command again would restart over the run: refused, in one line naming the folder
    assert lipdub("train", "expert", dataset, "-o", stopped, *RUN, "--max-steps", n + 1) == 1
    refused = capsys.readouterr().err
    assert "already holds a run (last.pth): pass --resume" in refused and str(stopped) in refused
    assert len(refused.strip().splitlines()) == 1

    # one more step after resuming == step n + 1 of an uninterrupted run (which also keeps only 2 checkpoints)
    assert lipdub("train", "expert", dataset, "-o", stopped, *RUN, "--max-steps", n + 1, "--resume") == 0
    whole = tmp_path / "whole"
    assert lipdub("train", "expert", dataset, "-o", whole, *RUN, "--max-steps", n + 1, "--resume", "auto",
                  "--checkpoint-interval", 2, "--keep-last", 2) == 0  # auto: nothing to resume, so it starts
    resumed, straight = _checkpoint(stopped / "last.pth"), _checkpoint(whole / "last.pth")
    assert resumed["global_step"] == straight["global_step"] == n + 1
    for k, v in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v)
    for i, state in straight["optimizer"]["state"].items():
        for k, v in state.items():
            torch.testing.assert_close(resumed["optimizer"]["state"][i][k], v)
    rows, straight_rows = _train_rows(stopped), _train_rows(whole)
    assert [r["step"] for r in rows] == list(range(1, n + 2))  # no step twice, none lost
    assert rows[-1]["loss"] == pytest.approx(straight_rows[-1]["loss"], rel=1e-5)  # the same batch was drawn
    assert rows[-1]["time_s"] >= rows[-2]["time_s"]  # time_s goes on across the resume

    kept = sorted(p.name for p in whole.glob("*checkpoint_step*.pth"))
    newest = (n + 1) // 2 * 2
    assert kept == [f"checkpoint_step{s:09d}.pth" for s in (newest - 2, newest)]  # --keep-last 2
    assert not (whole / "best.pth").exists()  # no validation, no best


def test_resume_alone_continues_from_the_newest_checkpoint_and_errors_are_one_line(
        dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert lipdub("train", "expert", dataset, "-o", run, *RUN, "--max-steps", 2, "--checkpoint-interval", 1,
                  "--keep-last", 1) == 0
    (run / "last.pth").unlink()  # e.g. a run killed hard: the numbered checkpoint is what is left
    assert [p.name for p in run.glob("checkpoint_step*.pth")] == ["checkpoint_step000000002.pth"]
    assert lipdub("train", "expert", dataset, "-o", run, *RUN, "--max-steps", 3, "--resume") == 0
    assert "resuming from" in capsys.readouterr().out
    assert _checkpoint(run / "last.pth")["global_step"] == 3

    assert lipdub("train", "expert", dataset, "-o", tmp_path / "empty", *RUN, "--resume") == 1
    assert "no such checkpoint to resume from" in capsys.readouterr().err

    (dataset / "filelists" / "val.txt").rename(dataset / "filelists" / "val.bak")
    try:
        (dataset / "filelists" / "val.txt").write_text("")
        with_val = [a for a in RUN if a != "--no-val"]
        assert lipdub("train", "expert", dataset, "-o", tmp_path / "v", *with_val, "--max-steps", 1) == 1
        err = capsys.readouterr().err
        assert "'val' filelist lists no clips" in err and "--no-val" in err and len(err.strip().splitlines()) == 1
    finally:
        (dataset / "filelists" / "val.bak").replace(dataset / "filelists" / "val.txt")
