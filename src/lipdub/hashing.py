"""Content hashes of files: the one SHA-256 that caches, resumable steps and downloads all key on."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

BLOCK = 1 << 20


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, streamed; memoised per process while its size and mtime hold."""
    st = os.stat(path)
    return _sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)
