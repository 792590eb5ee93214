"""Helpers the benchmark scripts share."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best wall time, CPU time of that run) of `repeats` calls.

    The machine may be shared, so the minimum is the honest wall figure; CPU seconds (all threads) say what the
    work costs regardless of other load: idle-machine fps ~ frames * threads / cpu.
    """
    runs = []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - w0, time.process_time() - c0))
    return min(runs)


def cold_home() -> Path:
    """Point LIPDUB_HOME at a new empty folder (no cached detections or weights), re-read by the settings."""
    home = Path(tempfile.mkdtemp(prefix="lipdub-bench-home-"))
    os.environ["LIPDUB_HOME"] = str(home)
    from lipdub.settings import get_settings

    get_settings.cache_clear()
    return home
