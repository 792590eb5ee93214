"""Turn kept clips into the training layout: per-frame face crops, exact audio, cached mel, split filelists."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from lipdub.data.runner import run_tasks
from lipdub.data.store import (
    FPS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    ClipRef,
    iter_clips,
    read_json,
    settings_hash,
    write_json,
)
from lipdub.errors import LipdubError, MediaError, NoFaceError
from lipdub.hashing import file_sha256

log = logging.getLogger(__name__)
FORMAT, VERSION = "lipdub-dataset", 1


@dataclass(frozen=True)
class PrepareConfig:
    """How face crops are made and which clips are too broken to use."""

    max_side: int = 256  # face crops are resized so their longer side is at most this
    jpeg_quality: int = 95
    fill_gap: int = 5  # frames a target face may be missing for (its crop box is interpolated across)
    min_frames: int = 25  # shorter usable runs are skipped
    use_cache: bool = True  # reuse the face analyses `filter` left in lipdub's detection cache
    sync_expert: str | None = None  # SyncNet checkpoint: measure each clip's audio-video offset ...
    max_offset: int = 3  # ... shift clips off by up to this many frames, drop the ones beyond
    max_shift: int = 15  # shifts (frames) the expert searches over


def target_track(tracks: Any, meta: dict[str, Any]) -> int:
    """The filter's chosen track when it is in `tracks`, else the face present in most frames."""
    from lipdub import faces

    chosen = (meta.get("filter") or {}).get("track_id")
    if chosen is not None and int(chosen) in tracks.track_ids:
        return int(chosen)
    return int(faces.select(tracks))


def crop_boxes(tracks: Any, track_id: int, n: int, frame_shape: tuple[int, int], fill_gap: int) -> np.ndarray:
    """(n, 4) float crop boxes (top, bottom, left, right) of the track, NaN where it is missing for longer
    than `fill_gap` frames; shorter gaps are filled by the tracker's own interpolation (faces.tracker.fill_gaps)."""
    from lipdub import faces
    from lipdub.faces.tracker import fill_gaps

    per_frame: list[list[Any]] = [[] for _ in range(n)]
    for i, face in tracks.track(track_id).items():
        if 0 <= i < n:
            per_frame[i].append(face)
    fill_gaps(per_frame, fill_gap)
    boxes = np.full((n, 4), np.nan)
    for i, found in enumerate(per_frame):
        if found:
            boxes[i] = faces.crop_box(found[0], frame_shape)
    return boxes


def longest_run(valid: np.ndarray) -> tuple[int, int]:
    """[start, end) of the longest run of True values ((0, 0) when there is none)."""
    best, start = (0, 0), None
    for i, v in enumerate([*valid.tolist(), False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def _clip_audio(clip: ClipRef, n_frames: int) -> np.ndarray:
    """The clip's 16 kHz mono audio, exactly `n_frames * 640` samples long."""
    from lipdub import media

    src = clip.wav if clip.wav.exists() else clip.video
    wav = media.load_audio(src, sr=SAMPLE_RATE, mono=True)
    need = n_frames * SAMPLES_PER_FRAME
    return np.pad(wav[:need], (0, max(0, need - len(wav)))).astype(np.float32)


def prepare_clip(task: dict[str, Any]) -> dict[str, Any]:
    """Runner task: write `<out>/<source>/<clip>/` (crops, audio.wav, mel.npy, clip.json) unless up to date.

    Returns the clip record, or {"clip", "skipped": reason} for a clip that cannot be used.
    """
    clip = ClipRef(Path(task["root"]), task["source"], task["clip"])
    cfg = PrepareConfig(**task["config"])
    dst = Path(task["out"]) / clip.source / clip.clip
    meta = clip.meta()
    input_hash = task.get("input_hash") or meta.get("sha256") or file_sha256(clip.video)
    done = _previous(dst, input_hash, task["settings_hash"])
    if done is not None:
        return done
    try:
        record = _prepare(clip, meta, dst, cfg)
    except (MediaError, NoFaceError, OSError, ValueError, av.error.FFmpegError) as err:
        record = {"clip": clip.key, "skipped": f"{type(err).__name__}: {err}"}
    record.update(input_hash=input_hash, settings_hash=task["settings_hash"])
    if "skipped" in record:  # remembered too, so a re-run does not try again
        write_json(_skip_marker(dst), record)
    else:
        write_json(dst / "clip.json", record)  # written last: marks the clip done
    return record


def _skip_marker(dst: Path) -> Path:
    return dst.parent.parent / ".skipped" / dst.parent.name / f"{dst.name}.json"


def _previous(dst: Path, input_hash: str, settings: str) -> dict[str, Any] | None:
    """The clip's record when it was prepared from the same content with the same settings."""
    for path in (dst / "clip.json", _skip_marker(dst)):
        done = read_json(path)
        if done and done.get("input_hash") == input_hash and done.get("settings_hash") == settings:
            return done
    return None


def _prepare(clip: ClipRef, meta: dict[str, Any], dst: Path, cfg: PrepareConfig) -> dict[str, Any]:
    """Crops of the target face for its longest (gap-filled) run, with the matching audio and mel."""
    import cv2

    from lipdub import faces, media
    from lipdub.audio.mel import melspectrogram

    tracks = faces.analyze(clip.video, fps=FPS, use_cache=cfg.use_cache, progress=_quiet)
    n = int(meta.get("n_frames") or tracks.num_frames)
    n = min(n, tracks.num_frames)
    if not tracks.track_ids:
        return {"clip": clip.key, "skipped": "no face"}
    tid = target_track(tracks, meta)
    boxes = crop_boxes(tracks, tid, n, (tracks.height, tracks.width), cfg.fill_gap)
    a, b = longest_run(np.isfinite(boxes[:, 0]))
    if b - a < cfg.min_frames:
        return {"clip": clip.key, "skipped": f"target face visible for only {b - a} consecutive frames"}
    audio = _clip_audio(clip, n)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        written = 0
        for i, frame in enumerate(media.iter_frames(clip.video, fps=FPS)):
            if i >= b:
                break
            if i < a:
                continue
            top, bottom, left, right = (int(round(v)) for v in boxes[i])
            crop = _fit(frame[top:bottom, left:right], cfg.max_side)
            cv2.imwrite(str(tmp / f"{i - a}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            written += 1
        b = a + written
        if written < cfg.min_frames:
            raise MediaError(f"video ended after {a + written} frames", clip.video)
        sync, offset = None, 0
        if cfg.sync_expert:
            sync = _measure_sync(tmp, audio[a * SAMPLES_PER_FRAME:b * SAMPLES_PER_FRAME], written, cfg)
            offset = sync["offset_frames"]
            a, b = _correct_offset(tmp, a, written, n, offset, cfg)
        clip_audio = audio[(a + offset) * SAMPLES_PER_FRAME:(b + offset) * SAMPLES_PER_FRAME]
        media.write_audio(tmp / "audio.wav", clip_audio, SAMPLE_RATE)
        np.save(tmp / "mel.npy", melspectrogram(clip_audio).astype(np.float32))
        shutil.rmtree(dst, ignore_errors=True)  # an outdated version of our own output
        os.replace(tmp, dst)
    except _Skip as skip:
        shutil.rmtree(tmp, ignore_errors=True)
        return {"clip": clip.key, "skipped": str(skip), "sync": sync}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    faces_per_frame = float(np.mean([len(tracks.faces_in(i)) for i in range(a, b)]))
    start = float(meta.get("start", 0.0))
    return {
        "source": clip.source, "clip": clip.clip, "n_frames": b - a, "fps": FPS, "sample_rate": SAMPLE_RATE,
        "start": round(start + a / FPS, 4), "end": round(start + b / FPS, 4), "first_frame": a,
        "offset_frames": offset, "sync": sync, "track_id": tid,
        "faces_per_frame": round(faces_per_frame, 3), "origin": meta.get("source"),
    }


class _Skip(Exception):
    """A clip that cannot be used (the message says why)."""


def _correct_offset(folder: Path, a: int, written: int, n: int, offset: int, cfg: PrepareConfig) -> tuple[int, int]:
    """Keep the crops whose audio exists once `offset` is corrected (renumbered from 0); new [a, b)."""
    from lipdub.data.sync import renumber

    if abs(offset) > cfg.max_offset:
        raise _Skip(f"audio-video offset of {offset} frames")
    k0, k1 = max(0, -(a + offset)), min(written, n - a - offset)  # frames whose audio exists in the clip
    if k1 - k0 < cfg.min_frames:
        raise _Skip("too short after the offset correction")
    renumber(folder, k0, k1, written)
    return a + k0, a + k1


def _measure_sync(folder: Path, audio: np.ndarray, n: int, cfg: PrepareConfig) -> dict[str, Any]:
    """The expert's offset estimate for the crops in `folder` and their audio."""
    from lipdub.audio.mel import melspectrogram
    from lipdub.data import sync
    from lipdub.data.windows import load_face
    from lipdub.settings import get_settings, resolve_device

    model = sync.load_expert(str(cfg.sync_expert), resolve_device(get_settings().device))
    crops = [load_face(folder / f"{k}.jpg", sync.IMG) for k in range(n)]
    return sync.estimate_offset(crops, melspectrogram(audio), model, cfg.max_shift)


def _quiet(*_: Any) -> None:
    """Progress sink: the runner's bar counts clips; no per-clip bars."""


def _fit(crop: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is at most `max_side`."""
    import cv2

    h, w = crop.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Split:
    """Which prepared clips validate: `val` and `gap` (left out of both lists) hold "<source>/<clip>" keys."""

    by: str  # "source", "time" (one source: its last clips) or "none"
    val: frozenset[str]
    gap: frozenset[str]
    fraction: float  # of the kept time (train + val) that validates

    def describe(self, asked: float) -> str:
        what = {"source": "by source video", "time": "by time inside the one source video (its last clips), "
                f"{len(self.gap)} clip(s) left out between train and val", "none": "none"}[self.by]
        return f"validation split {what}: {self.fraction:.0%} of the time held out (--val-split {asked:g})"


def choose_split(records: list[dict[str, Any]], val_split: float) -> Split:
    """The held-out clips closest to `val_split` of the time: whole sources, or, with one source, its last
    clips after a gap of GAP_S seconds (no sentence in both). Deterministic."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_source.setdefault(r["source"], []).append(r)
    if val_split <= 0 or not records:
        return Split("none", frozenset(), frozenset(), 0.0)
    if len(by_source) == 1:
        return _time_split(records, val_split)
    seconds = {s: sum(r["n_frames"] for r in rs) / FPS for s, rs in by_source.items()}
    chosen = split_sources(seconds, val_split)
    val = frozenset(_key(r) for s in chosen for r in by_source[s])
    return Split("source", val, frozenset(), sum(seconds[s] for s in chosen) / sum(seconds.values()))


def split_sources(seconds: dict[str, float], val_split: float) -> set[str]:
    """Validation sources whose time comes closest to `val_split` of the total (at least one source on each
    side): every subset for up to 15 sources, else greedily in a hash order."""
    order = sorted(seconds, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    total, target = sum(seconds.values()), val_split * sum(seconds.values())
    if len(order) <= 15:
        subsets = (c for k in range(1, len(order)) for c in itertools.combinations(order, k))
        return set(min(subsets, key=lambda c: abs(sum(seconds[s] for s in c) - target)))
    chosen, val = set(), 0.0
    for s in order:
        if abs(val + seconds[s] - target) < abs(val - target) and val + seconds[s] < total:
            chosen.add(s)
            val += seconds[s]
    return chosen or {order[0]}


GAP_S = 2.0  # a training clip must end this long before the held-out part starts (one source)


def _time_split(records: list[dict[str, Any]], val_split: float) -> Split:
    """One source: hold out its last k clips (k closest to val_split), leave out the clips that end within
    GAP_S of them. Needs at least two clips."""
    clips = sorted(records, key=lambda r: float(r.get("start", 0.0)))
    best: tuple[float, Split] | None = None
    for k in range(1, len(clips)):
        val, rest = clips[-k:], clips[:-k]
        start = float(val[0].get("start", 0.0))
        gap = [r for r in rest if float(r.get("end", 0.0)) > start - GAP_S]
        train_s = sum(r["n_frames"] for r in rest if r not in gap) / FPS
        if train_s <= 0:
            break
        val_s = sum(r["n_frames"] for r in val) / FPS
        split = Split("time", frozenset(map(_key, val)), frozenset(map(_key, gap)), val_s / (val_s + train_s))
        if best is None or abs(split.fraction - val_split) < best[0]:
            best = (abs(split.fraction - val_split), split)
    return best[1] if best is not None else Split("none", frozenset(), frozenset(), 0.0)


def _key(record: dict[str, Any]) -> str:
    return f"{record['source']}/{record['clip']}"


def split_fits(split: Split, asked: float) -> bool:
    """Close enough to what was asked: within a factor of two, or 5 points."""
    return abs(split.fraction - asked) <= 0.05 or asked / 2 <= split.fraction <= 2 * asked


def prepare(clips_dir: str | os.PathLike[str], out: str | os.PathLike[str], cfg: PrepareConfig, *,
            val_split: float = 0.05, force_split: bool = False, workers: int | None = None,
            ray_address: str | None = None) -> dict[str, Any]:
    """Prepare every clip under `clips_dir` into the dataset `out`; write filelists and manifest.json.

    Refuses (LipdubError) a validation split far from `val_split` (see split_fits) unless `force_split`.
    Returns the manifest plus "already_done": clips an earlier run had prepared with the same settings.
    """
    if not 0 <= val_split < 1:
        raise LipdubError(f"--val-split {val_split} must be in [0, 1)")
    clips = list(iter_clips(clips_dir))
    if not clips:
        raise LipdubError("no clips found (expected <source>/<clip>.mp4 with .json sidecars)", clips_dir)
    out = Path(out)
    if cfg.sync_expert and not Path(cfg.sync_expert).is_file():
        raise LipdubError("no such lip-sync expert checkpoint", cfg.sync_expert)
    settings = settings_hash({**asdict(cfg), "use_cache": None,  # caching does not change the output
                              "sync_expert": cfg.sync_expert and file_sha256(Path(cfg.sync_expert))})
    by_key: dict[str, dict[str, Any]] = {}
    tasks = []
    for c in clips:
        input_hash = c.meta().get("sha256") or file_sha256(c.video)
        done = _previous(out / c.source / c.clip, input_hash, settings)
        if done is not None:
            by_key[c.key] = done
        else:
            tasks.append({"root": str(c.root), "source": c.source, "clip": c.clip, "out": str(out),
                          "config": asdict(cfg), "settings_hash": settings, "input_hash": input_hash})
    for task, rec in zip(tasks, run_tasks(prepare_clip, tasks, workers=workers, ray_address=ray_address,
                                          desc="prepare", unit="clip"), strict=True):
        by_key[f"{task['source']}/{task['clip']}"] = rec
    records = [by_key[c.key] for c in clips]
    split = choose_split([r for r in records if "skipped" not in r], val_split)
    if val_split > 0 and not force_split and not split_fits(split, val_split):
        raise LipdubError(f"{split.describe(val_split)}, too far from what was asked: choose another "
                          "--val-split, or pass --force-split to use this one")
    manifest = write_index(out, records, split, val_split, asdict(cfg))
    return manifest | {"already_done": len(clips) - len(tasks)}


def write_index(out: Path, records: list[dict[str, Any]], split: Split, val_split: float,
                config: dict[str, Any]) -> dict[str, Any]:
    """filelists/train.txt, filelists/val.txt (as `split` says) and manifest.json."""
    good = [r for r in records if "skipped" not in r and _key(r) not in split.gap]
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for r in good:
        lists["val" if _key(r) in split.val else "train"].append(_key(r))
    for name, lines in lists.items():
        path = out / "filelists" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        os.replace(tmp, path)
    frames = sum(r["n_frames"] for r in good)
    manifest = {
        "format": FORMAT, "version": VERSION, "fps": FPS, "sample_rate": SAMPLE_RATE,
        "clips": len(good), "frames": frames, "hours": round(frames / FPS / 3600, 4),
        "sources": _sources(good, split),
        "splits": {k: {"clips": len(v), "hours": round(sum(r["n_frames"] for r in good if _key(r) in v)
                                                        / FPS / 3600, 4)} for k, v in lists.items()},
        "split": {"by": split.by, "asked": val_split, "val_fraction": round(split.fraction, 4),
                  "gap_clips": sorted(split.gap)},
        "skipped": [{"clip": r["clip"], "reason": r["skipped"]} for r in records if "skipped" in r],
        "config": config,
    }
    write_json(out / "manifest.json", manifest)
    return manifest


def _sources(good: list[dict[str, Any]], split: Split) -> dict[str, dict[str, Any]]:
    """Per source: clips, seconds, and its split ("train", "val", or "time" when split inside it)."""
    out: dict[str, dict[str, Any]] = {}
    for r in good:
        entry = out.setdefault(r["source"], {"clips": 0, "seconds": 0.0, "split": set()})
        entry["clips"] += 1
        entry["seconds"] += r["n_frames"] / FPS
        entry["split"].add("val" if _key(r) in split.val else "train")
    return {s: {"clips": e["clips"], "seconds": round(e["seconds"], 2),
                "split": e["split"].pop() if len(e["split"]) == 1 else "time"} for s, e in sorted(out.items())}
