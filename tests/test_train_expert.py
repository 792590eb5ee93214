"""The lip-sync expert learns sync: a deliberately overfitting tiny run on real frames (its own file, so that
under pytest-xdist this longest test runs beside the rest of the training tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_train import _one_thread, build_dataset, lipdub, metrics  # noqa: F401 (_one_thread: autouse fixture)

# A deliberately overfitting tiny run: one frontal speaker (16 s to train on, the next 4 s held out), the
# reference lr 1e-4 with batch 8 for 300 steps. With both speakers (one moving his head a lot) 400 steps stay
# near chance on held-out windows; with one, the held-out off-sync accuracy was 0.59-0.69 at steps 100-400
# (mean 0.63, seeds 0 and 1), against 0.5 by chance. Batch 4 (half the CI time) was tried: a standalone run
# followed the same path (0.553 / 0.560 / 0.635 / 0.636), in CI it dropped to chance at step 200 (0.551 / 0.495 /
# 0.589 / 0.549): its BatchNorm statistics over 4 samples are too noisy for a test that must not flake.
# 300 steps, not 400 (the longest test; ~150 CPU-s less): steps 100-300 measured, seed 0 (the test's, the first
# 300 steps of the 400-step CI runs) 0.558 / 0.646 / 0.622, seed 1 0.661 / 0.635 / 0.619, seed 2 0.653 / 0.677 /
# 0.624: each assertion below holds with room (mean of the last two >= 0.627, last >= 0.619, training loss down
# 0.09-0.14). Higher learning rates (2e-4, 3e-4 for 200 steps) were tried: noisier, 3 runs of 4 failed.

EXPERT_RUN = ["--batch-size", 8, "--lr", 1e-4, "--max-steps", 300, "--eval-interval", 100, "--eval-steps", 100,
              "--eval-first", "--log-interval", 10, "--checkpoint-interval", 200, "--num-workers", 0,
              "--cache-frames", 5000, "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def expert_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("expert")
    data = build_dataset(root / "dataset", speakers=("man",))
    out = root / "run"
    assert lipdub("train", "expert", data, "-o", out, *EXPERT_RUN) == 0
    return out


@pytest.mark.slow
def test_expert_loss_falls_and_it_tells_aligned_from_shifted_on_held_out_windows(expert_run: Path) -> None:
    evals = metrics(expert_run, "eval")
    train = metrics(expert_run, "train")
    assert [e["step"] for e in evals] == [0, 100, 200, 300]
    before, trained = evals[0], evals[1:]
    assert all(e["windows"] == 96 for e in evals)  # every window of the held-out clip, each vs. 95 shifted ones
    assert np.mean([r["loss"] for r in train[-10:]]) < np.mean([r["loss"] for r in train[:10]]) - 0.05
    accuracy = [e["offsync_acc"] for e in trained]  # chance: 0.5
    # above chance at every evaluation and clearly so by the end. The figures repeat from one CI run to the next
    # but differ between set-ups. Steps 100-300 with the earlier set-ups' 400-step runs: 0.545 / 0.559 / 0.637 (an
    # earlier session), 0.514 / 0.570 / 0.607 (CI, twice; the closest to the bars: 0.589 over the last two); with
    # Adam's fused CPU kernel 0.558 / 0.646 / 0.622 (the whole suite, twice; 0.659 at step 400)
    assert min(accuracy) > 0.5 and np.mean(accuracy[-2:]) > 0.58 and accuracy[-1] > 0.57
    assert np.mean(accuracy) > before["offsync_acc"] + 0.05
    assert min(e["loss"] for e in trained) < before["loss"]
    summary = json.loads((expert_run / "summary.json").read_text())
    assert summary["step"] == 300 and summary["eval"]["offsync_acc"] == pytest.approx(accuracy[-1], abs=1e-5)
    assert {"best.pth", "last.pth", "checkpoint_step000000200.pth", "config.json"} <= {
        p.name for p in expert_run.iterdir()}
    assert list((expert_run / "tb").glob("events.out.tfevents.*"))
