"""Atomic outputs: write to a hidden temp name beside the target, rename into place only on success."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_PATTERN = re.compile(r"%0?(\d*)d")


def is_sequence_pattern(path: str | os.PathLike[str]) -> bool:
    """True for a printf-style image-sequence path such as `frames/%05d.png`."""
    return _PATTERN.search(Path(path).name) is not None


def sequence_files(pattern: str | os.PathLike[str]) -> list[Path]:
    """Existing files matching a printf pattern (`frames/%05d.png` -> frames/00001.png, ...), sorted."""
    pattern = Path(pattern)
    if not pattern.parent.is_dir():
        return []
    m = _PATTERN.search(pattern.name)
    assert m is not None, f"not a sequence pattern: {pattern}"
    digits = r"\d+" if not m.group(1) else rf"\d{{{int(m.group(1))},}}"
    rx = re.compile(re.escape(pattern.name[: m.start()]) + digits + re.escape(pattern.name[m.end():]) + "$")
    return sorted(p for p in pattern.parent.iterdir() if rx.match(p.name))


def _new_temp_file(path: Path) -> Path:
    """Create an empty, uniquely named hidden file beside `path` (same extension) and return its path.

    Created like any new file (mode 0666 less the umask, applied by the kernel), so the output gets the mode
    the user expects. Unlike `tempfile.mkstemp` (0600) this needs no chmod afterwards, hence no umask read:
    `os.umask` can only be read by setting it, which races with other threads.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temp name beside {path}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path` (same extension, so muxers are picked by name); rename it on success.

    On any exception (also KeyboardInterrupt) the temp output is removed and `path` is left untouched.
    Missing parent folders are created. For an image-sequence pattern (`frames/%05d.png`) the yielded path
    is the same pattern inside a hidden temp folder; on success the files replace the sequence in place
    (files of an older, longer sequence with the same pattern are removed so the result is consistent).
    """
    path = Path(path)
    if is_sequence_pattern(path):
        with _atomic_sequence(path) as tmp:
            yield tmp
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _atomic_sequence(pattern: Path) -> Iterator[Path]:
    """atomic_output for a printf image-sequence pattern: a temp folder, then move the files into place."""
    target_dir = pattern.parent
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target_dir.name or 'frames'}.tmp-", dir=target_dir.parent))
    try:
        yield tmp_dir / pattern.name
        written = sequence_files(tmp_dir / pattern.name)
        if not target_dir.exists():
            os.replace(tmp_dir, target_dir)
            return
        names = {p.name for p in written}
        for old in sequence_files(pattern):
            if old.name not in names:
                old.unlink()
        for src in written:
            os.replace(src, target_dir / src.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
