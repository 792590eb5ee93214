"""Progress shown to the user: one monotonic percent over the pipeline's stages, and an ETA from the pace."""

from __future__ import annotations

import pytest

from lipdub.web.worker import eta_seconds, stage_percent


def test_percent_walks_the_stages_in_order_and_never_goes_back():
    p = 0.0
    seen = []
    for stage, done, total in [("detecting", 0, 10), ("detecting", 10, 10), ("generating", 0, 100),
                               ("generating", 50, 100), ("detecting", 3, 10), ("generating", 100, 100),
                               ("mystery", 1, 2), ("done", 1, 1)]:
        p = stage_percent(stage, done, total, p)
        seen.append(p)
    assert seen == sorted(seen)
    assert seen[1] < seen[3] < seen[5] < 100 and seen[-1] == 100
    assert seen[4] == seen[3]  # a late 'detecting' message does not pull the bar back
    assert seen[6] == seen[5]  # unknown stages keep the bar where it is


def test_eta_follows_the_current_stage_pace():
    # 40% of generating took 20 s -> 30 s left, whatever the earlier stages cost
    assert eta_seconds(started=0.0, percent=55.0, now=100.0, stage_started=80.0, stage_frac=0.4) == pytest.approx(30)
    # too early in the stage: extrapolate the whole job (50% after 10 s -> 10 s)
    assert eta_seconds(started=0.0, percent=50.0, now=10.0, stage_started=9.9, stage_frac=0.01) == pytest.approx(10)
    assert eta_seconds(started=0.0, percent=1.0, now=10.0) is None
    assert eta_seconds(started=0.0, percent=100.0, now=10.0) is None
