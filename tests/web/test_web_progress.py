"""Progress shown to the user: one monotonic percent over the pipeline's stages, and an ETA from the pace."""

from __future__ import annotations

import pytest

from lipdub.web.worker import StableEta, eta_seconds, stage_percent


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


def test_shown_eta_waits_for_a_steady_pace_then_counts_down_without_jumps():
    """A 20 s generating stage after 6 s of start-up, with one chunk taking 1.5 s instead of 0.2 s."""
    eta, shown, t, pct = StableEta(), [], 0.0, 0.0
    for stage, frac in [("starting", 0.0), ("preparing", 0.0), ("detecting", 0.5), ("detecting", 1.0)]:
        t += 1.5
        pct = stage_percent(stage, int(frac * 10), 10, pct)
        assert eta.update(t, stage, t, frac, pct) is None  # nothing stable to say during start-up
    began = t
    for k in range(1, 101):
        t += 1.5 if k == 30 else 0.2
        pct = stage_percent("generating", k, 100, pct)
        shown.append(eta.update(t, "generating", began, k / 100, pct))
    assert shown[:9] == [None] * 9 and shown[9] is not None  # from 10 % (and 1 s) of the stage on
    values = [v for v in shown if v is not None]
    assert values[0] == pytest.approx(18, rel=0.25)
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert max(steps) < 1.0  # the slow chunk nudges it up by under a second, never "3 min" to "2 s"
    assert values[-1] == pytest.approx(0, abs=0.6)
