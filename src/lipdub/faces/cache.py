"""Persistent detection cache: FaceTracks keyed by the media's content hash + detector settings + format.

Entries live in `<cache_dir>/faces/<key>.npz`. The key hashes the file's bytes (SHA-256 streamed in 1 MiB
blocks: ~1 GB/s, so a hit costs well under 1% of detecting), not its name, so a renamed or copied file
hits and an edited one misses. Writes go to a temp file in the same folder and `os.replace` it, so two
runs on one file never leave a torn entry; an unreadable or foreign entry is deleted and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from lipdub.faces.config import FaceSettings
from lipdub.faces.tracks import FORMAT_VERSION, FaceTracks
from lipdub.hashing import file_sha256

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    from lipdub.settings import get_settings

    return get_settings().cache_dir / "faces"


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file's bytes (memoised per process while size and mtime are unchanged)."""
    return file_sha256(path)


def cache_key(path: str | os.PathLike[str], settings: FaceSettings, rate: str | float | None) -> str:
    """Key of one analysis: content + settings + frame rate (None: the media's own) + cache format."""
    parts = [content_hash(path), settings.key(), str(rate), str(FORMAT_VERSION)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _entry(key: str) -> Path:
    return cache_dir() / f"{key}.npz"


def load(key: str) -> FaceTracks | None:
    """The cached tracks, or None on a miss. A corrupt or foreign entry is removed (and so rebuilt)."""
    path = _entry(key)
    if not path.is_file():
        return None
    try:
        tracks, meta = FaceTracks.load(path)
        if meta.get("key") != key:
            raise ValueError("entry belongs to another key")
        return tracks
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
        os.replace(tmp, _entry(key))
        return _entry(key)
    except OSError as err:
        log.warning("could not write face cache entry in %s (%s)", folder, err)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return None


def info() -> dict:
    """{'path', 'entries', 'bytes'} of the face cache."""
    folder = cache_dir()
    files = list(folder.glob("*.npz")) if folder.is_dir() else []
    return {"path": str(folder), "entries": len(files), "bytes": sum(f.stat().st_size for f in files)}


def clear() -> int:
    """Delete every entry (and stale temp files); returns how many entries were removed."""
    folder = cache_dir()
    if not folder.is_dir():
        return 0
    removed = 0
    for f in list(folder.glob("*.npz")) + list(folder.glob(".*.tmp")):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
            removed += f.suffix == ".npz"
    return removed
