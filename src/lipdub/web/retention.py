"""Retention: finished jobs and uploads older than `keep_days` are removed, and past `max_storage_gb` the oldest
finished ones go first. A queued or running job's files are never touched."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lipdub.web.store import TERMINAL, Store
from lipdub.web.uploads import frame_path

log = logging.getLogger(__name__)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def sweep(store: Store, job_dir: Callable[[str], Path], keep_days: float, max_bytes: float | None,
          now: float | None = None) -> list[str]:
    """Remove what retention allows; returns the ids of the jobs and uploads removed, oldest first."""
    now = time.time() if now is None else now
    cutoff = now - keep_days * 86400
    # candidates, oldest first: finished jobs (by when they ended) and uploads no waiting/running job needs
    items: list[tuple[float, str, str, list[Path]]] = []
    for job in store.list_jobs(limit=1_000_000):
        if job.state in TERMINAL:
            items.append((job.finished or job.created, "job", job.id, [job_dir(job.id)]))
    for up in store.list_uploads():
        if not store.upload_in_use(up.id):
            items.append((up.created, "upload", up.id, [up.path, frame_path(up.path)]))
    items.sort()
    total = None
    if max_bytes is not None:
        total = sum(_size(p) for p in (store.path.parent / "uploads", store.path.parent / "jobs"))
    removed = []
    for stamp, kind, item_id, paths in items:
        if stamp >= cutoff and (total is None or total <= max_bytes):
            continue
        freed = sum(_size(p) for p in paths)
        if kind == "job":
            store.delete_job(item_id)
        elif store.upload_in_use(item_id):  # a job was queued for it meanwhile
            continue
        else:
            store.delete_upload(item_id)
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if total is not None:
            total -= freed
        removed.append(item_id)
    return removed


class Janitor:
    """Runs `sweep` at start and every `every` seconds in a daemon thread."""

    def __init__(self, run: Callable[[], list[str]], every: float) -> None:
        self.run, self.every = run, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="lipdub-retention", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                gone = self.run()
                if gone:
                    log.info("retention removed %d item(s)", len(gone))
            except Exception:  # noqa: BLE001 - a failed sweep is retried next time
                log.exception("retention sweep")
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
