"""Persistent detection cache: FaceTracks keyed by the media's content hash + detector settings + format.

Entries live in `<cache_dir>/faces/<key>.npz`. The key hashes the file's bytes (SHA-256 streamed in 1 MiB
blocks: ~1 GB/s, so a hit costs well under 1% of detecting), not its name, so a renamed or copied file
hits and an edited one misses. Writes go to a temp file in the same folder and `os.replace` it, so two
runs on one file never leave a torn entry; an unreadable or foreign entry is deleted and rebuilt.

The cache is bounded (LIPDUB_CACHE_MAX_MB): every hit sets the entry's access time, and after each write the
least recently used entries are removed until the rest fit, the one just written always staying. Eviction runs
under a lock file, so concurrent runs do not both evict; it only ever removes finished entries (a write in
progress is a temp file, never touched unless abandoned for a day), and a reader whose entry vanishes under it
just misses.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

from filelock import FileLock

from lipdub.faces.config import FaceSettings
from lipdub.faces.tracks import FORMAT_VERSION, FaceTracks
from lipdub.hashing import file_sha256

log = logging.getLogger(__name__)
ABANDONED = 24 * 3600  # seconds after which a temp file is a crashed writer's leftover, not a write in progress


def cache_dir() -> Path:
    from lipdub.settings import get_settings

    return get_settings().cache_dir / "faces"


def max_bytes() -> int:
    """The size cap of the face cache (LIPDUB_CACHE_MAX_MB), in bytes."""
    from lipdub.settings import get_settings

    return int(get_settings().cache_max_mb * 1024 * 1024)


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file's bytes (memoised per process while size and mtime are unchanged)."""
    return file_sha256(path)


def cache_key(path: str | os.PathLike[str], settings: FaceSettings, rate: str | float | None) -> str:
    """Key of one analysis: content + settings + frame rate (None: the media's own) + cache format."""
    parts = [content_hash(path), settings.key(), str(rate), str(FORMAT_VERSION)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def entry(key: str) -> Path:
    """The file of one entry (it may not exist)."""
    return cache_dir() / f"{key}.npz"


def load(key: str) -> FaceTracks | None:
    """The cached tracks, or None on a miss. A corrupt or foreign entry is removed (and so rebuilt)."""
    path = entry(key)
    if not path.is_file():
        return None
    try:
        tracks, meta = FaceTracks.load(path)
        if meta.get("key") != key:
            raise ValueError("entry belongs to another key")
        _touch(path)
        return tracks
    except FileNotFoundError:  # evicted by another run meanwhile: a miss
        return None
    except Exception as err:  # noqa: BLE001 - any unreadable entry is a miss, never a crash
        log.warning("ignoring unreadable face cache entry %s (%s)", path, err)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def store(key: str, tracks: FaceTracks) -> Path | None:
    """Save atomically; a failure to write (read-only or full disk) only logs a warning."""
    folder = cache_dir()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            tracks.save(f, extra_meta={"key": key})
        os.replace(tmp, entry(key))
    except OSError as err:
        log.warning("could not write face cache entry in %s (%s)", folder, err)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return None
    _touch(entry(key))
    try:
        evict(keep=entry(key))
    except OSError as err:  # includes the lock's timeout: the entry is written, the cache trimmed next time
        log.warning("could not trim the face cache in %s (%s)", folder, err)
    return entry(key)


def _touch(path: Path) -> None:
    """Mark an entry as just used: its access time (set explicitly, so `noatime` mounts work too) is now; its
    modification time stays the time it was written."""
    with contextlib.suppress(OSError):
        os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))


def _entries(folder: Path) -> list[tuple[Path, os.stat_result]]:
    """(path, stat) of every finished entry, least recently used first."""
    found = []
    for path in folder.glob("*.npz") if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            found.append((path, path.stat()))
    return sorted(found, key=lambda e: e[1].st_atime_ns)


def _remove_abandoned(folder: Path) -> None:
    """Remove temp files no writer has touched for `ABANDONED` seconds (a crashed run's leftovers)."""
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - tmp.stat().st_mtime > ABANDONED:
                tmp.unlink()


def evict(keep: Path | None = None) -> int:
    """Remove least recently used entries until the cache fits `max_bytes()` (never `keep`), and temp files
    abandoned for a day; returns how many entries were removed."""
    folder, cap = cache_dir(), max_bytes()
    removed = 0
    with FileLock(folder / ".evict.lock", timeout=60):
        _remove_abandoned(folder)
        entries = _entries(folder)
        total = sum(st.st_size for _, st in entries)
        for path, st in entries:
            if total <= cap:
                break
            with contextlib.suppress(FileNotFoundError):
                if path == keep or path.stat().st_atime_ns != st.st_atime_ns:  # kept, or used since listed
                    continue
                path.unlink()
                removed += 1
            total -= st.st_size
    if removed:
        log.info("face cache over %d MiB: removed %d least recently used entr%s", cap >> 20, removed,
                 "y" if removed == 1 else "ies")
    return removed


def info() -> dict:
    """{'path', 'entries', 'bytes', 'max_bytes'} of the face cache."""
    folder = cache_dir()
    entries = _entries(folder)
    return {"path": str(folder), "entries": len(entries), "bytes": sum(st.st_size for _, st in entries),
            "max_bytes": max_bytes()}


def clear() -> int:
    """Delete every entry (and abandoned temp files; a write in progress finishes); returns how many entries
    were removed."""
    folder = cache_dir()
    if not folder.is_dir():
        return 0
    removed = 0
    for f in folder.glob("*.npz"):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
            removed += 1
    _remove_abandoned(folder)
    return removed
