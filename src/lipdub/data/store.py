"""On-disk bookkeeping shared by the data steps: content hashes, JSON sidecars and clip discovery."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lipdub.media.audio import SAMPLE_RATE  # re-exported: the data steps' audio rate is the pipeline's

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".m4v", ".ts", ".flv", ".wmv"}
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640: a clip of N frames has exactly N * 640 audio samples


def settings_hash(settings: dict[str, Any]) -> str:
    """Short stable hash of a JSON-able settings dict (key order does not matter)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or unreadable (an interrupted write)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False, default=_jsonable)
    os.replace(tmp, path)


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays and paths as plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def is_done(sidecar: str | os.PathLike[str], **expected: Any) -> bool:
    """True when `sidecar` exists and records every `expected` key with the same value (resumability)."""
    data = read_json(sidecar)
    return data is not None and all(data.get(k) == v for k, v in expected.items())


def link_or_copy(src: Path, dst: Path) -> None:
    """Place `src` at `dst` as a hard link (no extra disk), falling back to a copy; never touches `src`."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def find_videos(inputs: list[str | os.PathLike[str]]) -> list[Path]:
    """Video files named directly or found (recursively) in folders, sorted and de-duplicated."""
    found: set[Path] = set()
    for item in map(Path, inputs):
        if item.is_dir():
            found.update(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_EXTS and not p.name.startswith("."))
        elif item.exists():
            found.add(item)
        else:
            from lipdub.errors import LipdubError

            raise LipdubError("no such file or folder", item)
    return sorted(found)


@dataclass(frozen=True)
class ClipRef:
    """One clip of a clips folder: `<root>/<source>/<clip>.mp4` with its `<clip>.json` sidecar."""

    root: Path
    source: str
    clip: str

    @property
    def video(self) -> Path:
        return self.root / self.source / f"{self.clip}.mp4"

    @property
    def sidecar(self) -> Path:
        return self.root / self.source / f"{self.clip}.json"

    @property
    def wav(self) -> Path:
        return self.root / self.source / f"{self.clip}.wav"

    @property
    def key(self) -> str:
        return f"{self.source}/{self.clip}"

    def meta(self) -> dict[str, Any]:
        return read_json(self.sidecar) or {}


def iter_clips(root: str | os.PathLike[str]) -> Iterator[ClipRef]:
    """Every clip (an .mp4 with a .json sidecar) one level below `root`, in name order."""
    root = Path(root)
    if not root.is_dir():
        from lipdub.errors import LipdubError

        raise LipdubError("no such clips folder", root)
    for source_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for video in sorted(source_dir.glob("*.mp4")):
            if not video.name.startswith(".") and video.with_suffix(".json").exists():
                yield ClipRef(root, source_dir.name, video.stem)
