"""Cut long videos into short 25 fps / 16 kHz clips whose boundaries fall in the silences a VAD finds."""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from lipdub.data.runner import run_tasks
from lipdub.data.store import (
    FPS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    find_videos,
    is_done,
    read_json,
    settings_hash,
    write_json,
)
from lipdub.errors import LipdubError
from lipdub.hashing import file_sha256

log = logging.getLogger(__name__)
CLIP_NAME = re.compile(r"^\d{5}\.(mp4|json|wav)$")


@dataclass(frozen=True)
class CutConfig:
    """How clips are planned. Seconds throughout."""

    max_len: float = 10.0  # a voiced stretch longer than this is split ...
    piece: float = 5.0  # ... into pieces of about this length
    min_len: float = 1.0  # shorter stretches are merged into a neighbour, or dropped
    min_silence: float = 0.25  # pauses shorter than this do not end a clip
    max_merge_gap: float = 1.0  # a tiny stretch only joins a neighbour across a pause up to this long
    pad: float = 0.2  # silence kept before/after the speech of a clip (never past the pause's middle)
    crop: str | None = None  # "left-half" | "right-half" | "x,y,w,h"

    def __post_init__(self) -> None:
        if not (0 < self.piece <= self.max_len):
            raise LipdubError(f"--piece ({self.piece}) must be > 0 and <= --max-len ({self.max_len})")
        if not (0 < self.min_len <= self.piece):
            raise LipdubError(f"--min-len ({self.min_len}) must be > 0 and <= --piece ({self.piece})")


@dataclass
class Span:
    """One planned clip: [start_frame, end_frame) on the source's 25 fps grid, and how each end was cut."""

    start_frame: int
    end_frame: int
    cut_in: list[str] = field(default_factory=lambda: ["silence", "silence"])  # silence | piece | edge

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame


# ---------------------------------------------------------------------------------------------- planning


def plan_clips(speech: list[tuple[float, float]], n_frames: int, cfg: CutConfig,
               energy: np.ndarray | None = None) -> list[Span]:
    """Clips from speech segments: join short pauses, split long stretches, merge or drop tiny ones, pad.

    `n_frames`: length of the source on the 25 fps grid. `energy`: per-frame RMS (optional) so forced splits
    of a long stretch land on its quietest frame near each `piece` multiple.
    """
    duration = n_frames / FPS
    stretches = _join_pauses(speech, duration, cfg.min_silence)
    pieces: list[tuple[float, float, str, str]] = []  # (start, end, start_kind, end_kind)
    for start, end in stretches:
        pieces.extend(_split_long(start, end, cfg, energy))
    pieces = _merge_tiny(pieces, cfg)
    return _pad_and_snap(pieces, n_frames, cfg)


def _join_pauses(speech: list[tuple[float, float]], duration: float, min_silence: float) -> list[list[float]]:
    """Sorted, clipped speech segments with pauses shorter than `min_silence` bridged."""
    out: list[list[float]] = []
    for s, e in sorted((max(0.0, float(s)), min(duration, float(e))) for s, e in speech):
        if e <= s:
            continue
        if out and s - out[-1][1] < min_silence:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def _split_long(start: float, end: float, cfg: CutConfig,
                energy: np.ndarray | None) -> list[tuple[float, float, str, str]]:
    """A stretch up to `max_len` as is; a longer one in about-`piece`-second pieces cut at quiet frames."""
    length = end - start
    if length <= cfg.max_len:
        return [(start, end, "silence", "silence")]
    k = max(2, round(length / cfg.piece))
    cuts = [start + length * i / k for i in range(1, k)]
    if energy is not None and len(energy):
        reach = min(0.5, cfg.piece / 4)
        cuts = [_quietest(t, reach, energy) for t in cuts]
    bounds = [start, *cuts, end]
    return [(a, b, "silence" if i == 0 else "piece", "silence" if i == k - 1 else "piece")
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]


def _quietest(t: float, reach: float, energy: np.ndarray) -> float:
    """The frame boundary within `reach` seconds of `t` whose frame has the least energy."""
    lo = max(0, int(math.floor((t - reach) * FPS)))
    hi = min(len(energy), int(math.ceil((t + reach) * FPS)) + 1)
    if hi <= lo:
        return t
    return (lo + int(np.argmin(energy[lo:hi]))) / FPS


def _merge_tiny(pieces: list[tuple[float, float, str, str]], cfg: CutConfig) -> list[tuple[float, float, str, str]]:
    """Join stretches shorter than `min_len` to the nearer neighbour when the result fits; drop the rest."""
    items = [list(p) for p in pieces]
    i = 0
    while i < len(items):
        s, e = items[i][0], items[i][1]
        if e - s >= cfg.min_len:
            i += 1
            continue
        options = []
        if i > 0:
            options.append((s - items[i - 1][1], i - 1))
        if i + 1 < len(items):
            options.append((items[i + 1][0] - e, i + 1))
        options = [(gap, j) for gap, j in sorted(options)
                   if gap <= cfg.max_merge_gap
                   and max(e, items[j][1]) - min(s, items[j][0]) <= cfg.max_len]
        if options:
            j = options[0][1]
            a, b = (items[j], items[i]) if j < i else (items[i], items[j])
            a[1], a[3] = b[1], b[3]
            del items[max(i, j)]
            i = min(i, j)  # the merged item may still be tiny: look at it again
        else:
            del items[i]
    return [tuple(p) for p in items]  # type: ignore[misc]


def _pad_and_snap(pieces: list[tuple[float, float, str, str]], n_frames: int, cfg: CutConfig) -> list[Span]:
    """Extend each clip into the surrounding silence (at most `pad`, never past the pause's middle) on frames."""
    spans: list[Span] = []
    duration = n_frames / FPS
    for i, (s, e, ks, ke) in enumerate(pieces):
        if ks == "silence":
            prev_end = pieces[i - 1][1] if i else 0.0
            floor_t = (prev_end + s) / 2 if i else 0.0
            new_s = max(s - cfg.pad, floor_t)
            ks = "silence" if s > 0 else "edge"
            s = new_s
        if ke == "silence":
            next_start = pieces[i + 1][0] if i + 1 < len(pieces) else duration
            ceil_t = (e + next_start) / 2 if i + 1 < len(pieces) else duration
            new_e = min(e + cfg.pad, ceil_t)
            ke = "silence" if e < duration else "edge"
            e = new_e
        f0, f1 = max(0, round(s * FPS)), min(n_frames, round(e * FPS))
        if f1 > f0:
            spans.append(Span(f0, f1, [ks, ke]))
    return spans


def parse_crop(crop: str | None, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) in source pixels for `left-half`, `right-half` or `x,y,w,h`; None for no crop."""
    if not crop:
        return None
    if crop == "left-half":
        return 0, 0, width // 2, height
    if crop == "right-half":
        return width // 2, 0, width - width // 2, height
    try:
        x, y, w, h = (int(v) for v in crop.split(","))
    except ValueError:
        raise LipdubError(f"--crop {crop!r}: use left-half, right-half or x,y,w,h in pixels") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise LipdubError(f"--crop {crop!r} does not fit inside the {width}x{height} picture")
    return x, y, w, h


# ---------------------------------------------------------------------------------------------- cutting


def source_id(path: Path, digest: str) -> str:
    """The deterministic folder name of a source's clips: `<stem>-<first 8 hex of its content hash>`."""
    stem = re.sub(r"[^\w.-]+", "_", path.stem).strip("._") or "source"
    return f"{stem}-{digest[:8]}"


def frame_energy(wav: np.ndarray) -> np.ndarray:
    """RMS of each 25 fps frame's 640 audio samples."""
    n = len(wav) // SAMPLES_PER_FRAME
    frames = wav[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME).astype(np.float64)
    return np.sqrt((frames**2).mean(axis=1))


CHUNK_SECONDS = 30.0  # clips are encoded in groups covering about this much source, in parallel
ENCODE = {"crf": 18, "preset": "veryfast"}  # near-transparent H.264 at about half the cost of "fast"


def plan_source(task: dict[str, Any]) -> dict[str, Any]:
    """Runner task {"source", "out", "config"}: hash, find speech, plan the clips of one source.

    Returns {"done": summary} when `cut.json` already records this content and these settings, {"error"} for
    an unusable source, else the plan. The 16 kHz audio is left in `<clips>/.audio16k.npy` for the encoders.
    """
    from lipdub import media
    from lipdub.audio import vad

    src, out_root, cfg = Path(task["source"]), Path(task["out"]), CutConfig(**task["config"])
    try:
        digest = file_sha256(src)
    except OSError as err:
        return {"source": str(src), "error": f"cannot read: {err.strerror or err}"}
    sid = source_id(src, digest)
    out = out_root / sid
    settings = settings_hash(asdict(cfg))
    if is_done(out / "cut.json", source_hash=digest, settings_hash=settings):
        return {"done": read_json(out / "cut.json")}
    try:
        info = media.probe(src)
        if info.kind != "video":
            raise LipdubError(f"is {info.kind}, not a video", src)
        if not info.has_audio:
            raise LipdubError("has no audio stream to find speech in", src)
        wav = media.load_audio(src, sr=SAMPLE_RATE, mono=True)
        n_frames = min(int(math.floor(info.duration * FPS + 1e-6)), len(wav) // SAMPLES_PER_FRAME)
        speech = [(float(s), float(e)) for s, e in vad.speech_segments(wav)]
        spans = plan_clips(speech, n_frames, cfg, frame_energy(wav))
        crop = parse_crop(cfg.crop, info.width, info.height)
    except LipdubError as err:
        return {"source": str(src), "source_id": sid, "error": err.problem}
    out.mkdir(parents=True, exist_ok=True)
    _clear_stale(out, settings)
    tmp = out / f".audio16k.{os.getpid()}.npy"
    np.save(tmp, wav)
    os.replace(tmp, out / ".audio16k.npy")
    base = {"source": str(src.resolve()), "source_id": sid, "source_hash": digest, "settings_hash": settings,
            "fps": FPS, "sample_rate": SAMPLE_RATE, "crop": crop}
    return {"base": base, "out": str(out), "spans": [asdict(s) for s in spans], "duration": n_frames / FPS,
            "speech_seconds": sum(e - s for s, e in speech), "config": asdict(cfg)}


def _clear_stale(out: Path, settings: str) -> None:
    """Remove clips an earlier run made with other settings (only our own numbered files)."""
    summary = out / "cut.json"
    old = read_json(summary)
    if old is None or old.get("settings_hash") == settings:
        return
    for p in out.iterdir():
        if CLIP_NAME.match(p.name):
            p.unlink()
    summary.unlink()


def chunks(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's clips in runner tasks of consecutive clips covering about CHUNK_SECONDS of source each."""
    tasks: list[dict[str, Any]] = []
    for i, span in enumerate(plan["spans"]):
        if not tasks or span["end_frame"] - tasks[-1]["spans"][0][1]["start_frame"] > CHUNK_SECONDS * FPS:
            tasks.append({"out": plan["out"], "base": plan["base"], "spans": []})
        tasks[-1]["spans"].append((i, span))
    return tasks


def write_chunk(task: dict[str, Any]) -> dict[str, Any]:
    """Runner task: encode a run of consecutive clips (skipping finished ones) from one seek into the source.

    Returns {"out", "written": [clip names on disk], "ended": frame where decoding stopped early, or None},
    plus "source" and "error" when the stream is damaged (the clips before the damage are kept).
    """
    from lipdub import media

    out, base = Path(task["out"]), task["base"]
    todo = [(i, Span(**span)) for i, span in task["spans"]]
    todo = [(i, span) for i, span in todo if not _clip_done(out, i, span, base)]
    if not todo:
        return {"out": str(out), "written": [f"{i:05d}" for i, _ in task["spans"]], "ended": None}
    wav = np.load(out / ".audio16k.npy", mmap_mode="r")
    crop = base["crop"]
    first = todo[0][1].start_frame
    starts = {span.start_frame: (i, span) for i, span in todo}
    last = max(span.end_frame for _, span in todo)
    writer, current, frame_no = None, None, first - 1
    try:
        for frame_no, frame in enumerate(media.iter_frames(base["source"], fps=FPS, start=first), start=first):
            if frame_no >= last:
                break
            if writer is None and frame_no in starts:
                current = starts[frame_no]
                writer = media.VideoWriter(out / f"{current[0]:05d}.mp4", FPS, audio=_clip_audio(wav, current[1]),
                                           audio_rate=SAMPLE_RATE, **ENCODE)
                writer.__enter__()
            if writer is None:
                continue
            if crop is not None:
                x, y, w, h = crop
                frame = np.ascontiguousarray(frame[y:y + h, x:x + w])
            writer.write(frame)
            if frame_no + 1 == current[1].end_frame:
                writer.__exit__(None, None, None)
                writer = None
                _finish_clip(out, current[0], current[1], wav, base)
    except (LipdubError, OSError, ValueError, av.error.FFmpegError) as err:  # damaged stream: keep what is done
        if writer is not None:
            writer.__exit__(type(err), err, err.__traceback__)
        log.warning("%s: cannot decode past frame %d: %s", base["source"], frame_no + 1, err)
        return {"out": str(out), "written": _finished(out, task, base), "ended": frame_no + 1,
                "source": base["source"], "error": f"cannot decode past frame {frame_no + 1}: {err}"}
    except BaseException as err:
        if writer is not None:
            writer.__exit__(type(err), err, err.__traceback__)
        raise
    if writer is not None:  # the video ended before the audio: drop the unfinished clip
        writer.__exit__(_SourceEnded, _SourceEnded(), None)
        log.warning("%s: video ended at frame %d, before the audio", base["source"], frame_no + 1)
        return {"out": str(out), "written": _finished(out, task, base), "ended": frame_no + 1}
    return {"out": str(out), "written": _finished(out, task, base), "ended": None}


def _finished(out: Path, task: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """Names of the chunk's clips that are completely on disk."""
    return [f"{i:05d}" for i, span in task["spans"] if _clip_done(out, i, Span(**span), base)]


def _clip_done(out: Path, index: int, span: Span, base: dict[str, Any]) -> bool:
    name = f"{index:05d}"
    return (out / f"{name}.mp4").exists() and is_done(
        out / f"{name}.json", settings_hash=base["settings_hash"], source_hash=base["source_hash"],
        start_frame=span.start_frame, end_frame=span.end_frame)


class _SourceEnded(Exception):
    """Aborts the writer of a clip the video stream did not finish."""


def _clip_audio(wav: np.ndarray, span: Span) -> np.ndarray:
    """The span's audio: exactly n_frames * 640 samples (zero-padded past the end of the source)."""
    a = np.asarray(wav[span.start_frame * SAMPLES_PER_FRAME: span.end_frame * SAMPLES_PER_FRAME], np.float32)
    need = span.n_frames * SAMPLES_PER_FRAME
    return np.pad(a, (0, need - len(a))) if len(a) < need else a


def _finish_clip(out: Path, index: int, span: Span, wav: np.ndarray, base: dict[str, Any]) -> None:
    """The clip's exact PCM audio and, last (it marks the clip done), its JSON sidecar."""
    from lipdub import media

    name = f"{index:05d}"
    media.write_audio(out / f"{name}.wav", _clip_audio(wav, span), SAMPLE_RATE)
    write_json(out / f"{name}.json", {
        **base, "clip": name, "start": span.start_frame / FPS, "end": span.end_frame / FPS,
        "start_frame": span.start_frame, "end_frame": span.end_frame, "n_frames": span.n_frames,
        "cut_in": span.cut_in, "sha256": file_sha256(out / f"{name}.mp4"),
    })


def cut(inputs: list[str | os.PathLike[str]], out: str | os.PathLike[str], cfg: CutConfig, *,
        workers: int | None = None, ray_address: str | None = None) -> dict[str, Any]:
    """Cut every video in `inputs` (files or folders) into `out/<source-id>/<00000>.mp4` (+ .wav, .json).

    Two parallel phases: plan each source (hash, VAD), then encode groups of clips; a source is marked done
    (`cut.json`) only when all its clips are on disk.
    """
    sources = find_videos(inputs)
    out = Path(out)
    sources = [s for s in sources if out.resolve() not in s.resolve().parents]  # never re-cut our own clips
    if not sources:
        raise LipdubError("no video files found", ", ".join(map(str, inputs)))
    out.mkdir(parents=True, exist_ok=True)
    tasks = [{"source": str(s), "out": str(out), "config": asdict(cfg)} for s in sources]
    plans = run_tasks(plan_source, tasks, workers=workers, ray_address=ray_address, desc="cut: plan", unit="video")
    todo = [p for p in plans if "spans" in p]
    results = run_tasks(write_chunk, [c for p in todo for c in chunks(p)], workers=workers,
                        ray_address=ray_address, desc="cut: encode", unit="chunk")
    summaries = [p["done"] for p in plans if "done" in p]
    for plan in todo:
        summaries.append(_summarise(plan, [r for r in results if r["out"] == plan["out"]]))
    failed = [{"source": p["source"], "error": p["error"]} for p in plans if "error" in p]
    failed += [{"source": r["source"], "error": r["error"]} for r in results if "error" in r]
    return {
        "sources": len(plans), "failed": failed, "skipped": sum("done" in p for p in plans),
        "clips": sum(len(s["clips"]) for s in summaries),
        "source_seconds": sum(s["duration"] for s in summaries),
        "clip_seconds": sum(s["clip_seconds"] for s in summaries),
    }


def _summarise(plan: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Write `cut.json` (marks the source done) and drop the temporary audio."""
    out = Path(plan["out"])
    names = sorted(n for r in results for n in r["written"])
    lengths = {f"{i:05d}": s["end_frame"] - s["start_frame"] for i, s in enumerate(plan["spans"])}
    summary = {**plan["base"], "duration": plan["duration"], "speech_seconds": plan["speech_seconds"],
               "clips": names, "clip_seconds": sum(lengths[n] for n in names) / FPS, "config": plan["config"]}
    write_json(out / "cut.json", summary)
    (out / ".audio16k.npy").unlink(missing_ok=True)
    return summary
