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


def still_720p(path: Path):
    """The portrait scaled to 720 px high, centred on a 1280x720 canvas."""
    import cv2
    import numpy as np

    from lipdub.media import read_image

    img = read_image(path)
    scale = 720 / img.shape[0]
    img = cv2.resize(img, (int(round(img.shape[1] * scale)), 720), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    x0 = (1280 - img.shape[1]) // 2
    canvas[:, x0:x0 + img.shape[1]] = img[:, :1280]
    return canvas
