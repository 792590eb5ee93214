"""Face detection for the picker in one long-lived helper process: warm models, and the server never computes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from lipdub.errors import LipdubError
from lipdub.web.store import Upload
from lipdub.web.uploads import detect

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Load the face detector once, so the first picker request answers quickly."""
    import numpy as np

    from lipdub.faces import detect_faces

    detect_faces(np.zeros((64, 64, 3), np.uint8))


class FacePicker:
    """`await picker.faces(upload)` runs `uploads.detect` in a spawned helper process (restarted if it dies)."""

    def __init__(self, warm: bool = True) -> None:
        self.warm = warm
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
            return self._pool

    def start(self) -> None:
        if self.warm:
            self._executor().submit(warm_up).add_done_callback(
                lambda f: f.exception() and log.debug("warm-up failed: %s", f.exception()))

    async def faces(self, upload: Upload) -> list[dict]:
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, detect, upload)
        except BrokenProcessPool as err:
            self._reset(pool)
            raise LipdubError("face detection crashed on this file", upload.name) from err

    def _reset(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        _terminate(pool)

    def stop(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            _terminate(pool)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the helper now, even mid-detection (a long video must not hold the server's exit)."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
