"""Keep only clips where the target person is on screen and is the one talking; report why others went.

Who is who comes from the face analysis (lipdub.faces): tracks end at shot boundaries and are grouped into
persons by identity, so a clip cut across a shot change is judged per person, never per track.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np

from lipdub.data import talking
from lipdub.data.runner import run_tasks
from lipdub.data.store import (
    FPS,
    SAMPLE_RATE,
    ClipRef,
    iter_clips,
    link_or_copy,
    read_json,
    settings_hash,
    write_json,
)
from lipdub.errors import LipdubError, MediaError
from lipdub.hashing import file_sha256

log = logging.getLogger(__name__)
REASONS = ("no face", "other person", "too short", "multiple faces", "corrupt")
VERDICTS = ".verdicts"


@dataclass(frozen=True)
class FilterConfig:
    """When a clip is kept."""

    min_visible: float = 0.8  # share of frames the target must be visible in
    max_distance: float = 0.6  # identity distance under which a face is the target (dlib 128-d scale)
    min_len: float = 1.0  # seconds
    other_share: float = 0.1  # another face visible in more than this share of frames makes the clip "multi-face"
    sync_margin: float = 0.1  # with several faces, the target's mouth must follow the audio this much better
    min_sync: float | None = None  # alone on screen, the mouth must follow the audio this well (off: None)
    samples_per_track: int = 3  # frames embedded per track for the identity check
    use_cache: bool = True  # reuse/keep face analyses in lipdub's detection cache (prepare reads them again)


def reference_embeddings(photos: list[str | os.PathLike[str]]) -> np.ndarray:
    """Identity embeddings `(n, d)` of the target's face in each reference photo.

    A photo is `photo.jpg`, or `photo.jpg:face=N` when it shows several people (N as `lipdub faces` numbers
    them); a missing photo, a photo without a face or with several and no `:face=N` is a one-line error.
    """
    from lipdub.faces.select import reference_embedding

    return np.stack([np.asarray(reference_embedding(photo), np.float32) for photo in photos])


def _photo_key(photo: str | os.PathLike[str]) -> str:
    """Content hash of a reference photo plus the face asked for (part of the settings hash)."""
    from lipdub.faces.select import reference_spec
    from lipdub.media.info import check_exists

    path, face = reference_spec(photo)
    return f"{file_sha256(check_exists(path))}:{face}"


def judge_clip(clip: ClipRef, refs: np.ndarray, cfg: FilterConfig) -> dict[str, Any]:
    """The verdict on one clip: {"kept", "reason", "track_id", "visible", "distance", "sync", ...}."""
    from lipdub import faces

    meta = clip.meta()
    n = int(meta.get("n_frames", 0))
    verdict: dict[str, Any] = {"clip": clip.key, "kept": False, "reason": None, "n_frames": n}
    if n < cfg.min_len * FPS:
        return {**verdict, "reason": "too short"}
    try:
        tracks = faces.analyze(clip.video, fps=FPS, use_cache=cfg.use_cache, progress=_quiet)
        wav = _clip_audio(clip)
        per_frame = [list(tracks.faces_in(i)) for i in range(n)]
    except (MediaError, OSError, ValueError, av.error.FFmpegError) as err:
        return {**verdict, "reason": "corrupt", "detail": str(err)}
    # ids below are persons; the speaker helpers group faces by `track_id`, so label each face with its person
    per_frame = [[replace(f, track_id=f.person_id) for f in fs] for fs in per_frame]
    presence = Counter(f.track_id for fs in per_frame for f in fs)
    if not presence:
        return {**verdict, "reason": "no face"}
    distances = _person_distances(clip, tracks, per_frame, presence, refs, cfg)
    verdict["distances"] = {str(t): round(d, 3) for t, d in distances.items()}
    matches = {t: d for t, d in distances.items() if d < cfg.max_distance}
    if not matches:
        return {**verdict, "reason": "other person"}
    target = min(matches, key=matches.get)
    visible = presence[target] / n
    # prepare crops one track: the person's longest in this clip
    longest = max(tracks.tracks_of(target), key=lambda t: len(tracks.frames_of(t)))
    verdict.update(person=int(target), track_id=int(longest), distance=round(distances[target], 3),
                   visible=round(visible, 3))
    if visible < cfg.min_visible:
        others_visible = any(f.track_id != target for fs in per_frame for f in fs)
        return {**verdict, "reason": "other person" if others_visible else "no face"}
    others = [t for t, c in presence.items() if t != target and c / n > cfg.other_share]
    if others:
        return _who_talks(verdict, per_frame, wav, target, others, cfg)
    if cfg.min_sync is not None:  # alone on screen: optionally also require the mouth to follow the sound
        score = talking.sync_score(talking.track_openings(per_frame, [target])[target], talking.loudness(wav, n))
        verdict["sync"] = {str(target): None if np.isnan(score) else round(score, 3)}
        if not score >= cfg.min_sync:
            return {**verdict, "reason": "other person"}
    return {**verdict, "kept": True}


def _quiet(*_: Any) -> None:
    """Progress sink: the runner's bar counts clips; no per-clip bars."""


def _who_talks(verdict: dict[str, Any], per_frame: list, wav: np.ndarray, target: int, others: list[int],
               cfg: FilterConfig) -> dict[str, Any]:
    """Several faces: keep only when the target's mouth follows the audio clearly better than any other's."""
    loud = talking.loudness(wav, len(per_frame))
    openings = talking.track_openings(per_frame, [target, *others])
    scores = {t: talking.sync_score(o, loud) for t, o in openings.items()}
    verdict["sync"] = {str(t): (None if np.isnan(s) else round(s, 3)) for t, s in scores.items()}
    mine = scores[target]
    best_other = max((s for t, s in scores.items() if t != target and np.isfinite(s)), default=float("nan"))
    if np.isfinite(mine) and (not np.isfinite(best_other) or mine >= best_other + cfg.sync_margin):
        return {**verdict, "kept": True}
    if np.isfinite(best_other) and (not np.isfinite(mine) or best_other >= mine + cfg.sync_margin):
        return {**verdict, "reason": "other person"}
    return {**verdict, "reason": "multiple faces"}


def _clip_audio(clip: ClipRef) -> np.ndarray:
    """The clip's exact 16 kHz audio: its .wav from `cut`, else the video's own audio track."""
    if clip.wav.exists():
        import soundfile as sf

        wav, sr = sf.read(clip.wav, dtype="float32", always_2d=False)
        if sr == SAMPLE_RATE and wav.ndim == 1:
            return wav
    from lipdub import media

    return media.load_audio(clip.video, sr=SAMPLE_RATE, mono=True)


def _person_distances(clip: ClipRef, tracks: Any, per_frame: list, presence: Counter, refs: np.ndarray,
                      cfg: FilterConfig) -> dict[int, float]:
    """Per person (`per_frame` faces labelled by person): distance to the nearest reference, from the nearest
    of the person's tracks. A track's identity is what the face cache keeps (its embedding or its best view);
    a person without one gets the median over a few of its largest faces, decoded."""
    from lipdub import media
    from lipdub.faces import identity
    from lipdub.faces.select import track_embedding

    def nearest(emb: np.ndarray) -> float:
        return float(np.linalg.norm(refs - np.asarray(emb, np.float32), axis=1).min())

    out: dict[int, float] = {}
    wanted: dict[int, list[tuple[int, Any]]] = {}
    for t in presence:
        embs = [e for k in tracks.tracks_of(t) if (e := track_embedding(tracks, k)) is not None]
        if embs:
            out[t] = min(nearest(e) for e in embs)
            continue
        seen = sorted(((i, f) for i, fs in enumerate(per_frame) for f in fs if f.track_id == t),
                      key=lambda p: -p[1].area)
        wanted[t] = sorted(seen[: cfg.samples_per_track], key=lambda p: p[0])
    need = sorted({i for picks in wanted.values() for i, _ in picks})
    if need:
        frames = dict(zip(need, media.FrameSource(clip.video, fps=FPS).frames(need), strict=True))
        for t, picks in wanted.items():
            out[t] = float(np.median([nearest(identity.embed(frames[i], f)) for i, f in picks]))
    return out


def filter_task(task: dict[str, Any]) -> dict[str, Any]:
    """Runner task: judge one clip, record the verdict, and place the clip in the output when kept."""
    clip = ClipRef(Path(task["root"]), task["source"], task["clip"])
    out = Path(task["out"])
    verdict = judge_clip(clip, np.asarray(task["refs"], dtype=np.float32), FilterConfig(**task["config"]))
    verdict.update(input_hash=task["input_hash"], settings_hash=task["settings_hash"])
    write_json(out / VERDICTS / clip.source / f"{clip.clip}.json", verdict)
    _place(clip, out, verdict)
    return verdict


def _previous(clip: ClipRef, out: Path, input_hash: str | None, settings: str) -> dict[str, Any] | None:
    """The recorded verdict on this clip when its content and the settings are unchanged."""
    old = read_json(out / VERDICTS / clip.source / f"{clip.clip}.json")
    if old and input_hash and old.get("input_hash") == input_hash and old.get("settings_hash") == settings:
        return old
    return None


def _safe_hash(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _place(clip: ClipRef, out: Path, verdict: dict[str, Any]) -> None:
    """Link a kept clip (video, audio, sidecar + verdict) into `out/<source>/`; unlink a no-longer-kept one."""
    dst = out / clip.source
    names = [f"{clip.clip}.mp4", f"{clip.clip}.wav", f"{clip.clip}.json"]
    if not verdict["kept"]:
        for name in names:
            (dst / name).unlink(missing_ok=True)
        return
    link_or_copy(clip.video, dst / names[0])
    if clip.wav.exists():
        link_or_copy(clip.wav, dst / names[1])
    keep = {k: verdict[k] for k in ("person", "track_id", "distance", "visible", "sync") if k in verdict}
    write_json(dst / names[2], {**clip.meta(), "filter": keep})


def filter_clips(clips_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                 photos: list[str | os.PathLike[str]], cfg: FilterConfig, *, workers: int | None = None,
                 ray_address: str | None = None) -> dict[str, Any]:
    """Judge every clip under `clips_dir`; kept ones go to `out/<source>/`, `out/report.json` lists all."""
    clips = list(iter_clips(clips_dir))
    if not clips:
        raise LipdubError("no clips found (expected <source>/<clip>.mp4 with .json sidecars)", clips_dir)
    if not photos:
        raise LipdubError("--person needs at least one reference photo of the target")
    out = Path(out)
    if out.resolve() == Path(clips_dir).resolve():
        raise LipdubError("the output folder must differ from the clips folder", out)
    settings = settings_hash({**asdict(cfg), "use_cache": None,  # caching does not change verdicts
                              "photos": sorted(_photo_key(p) for p in photos)})
    refs = reference_embeddings(photos).tolist()  # checks every photo before any work
    verdicts: dict[str, dict[str, Any]] = {}
    tasks = []
    for c in clips:
        input_hash = c.meta().get("sha256") or _safe_hash(c.video)
        old = _previous(c, out, input_hash, settings)
        if old is not None:
            _place(c, out, old)
            verdicts[c.key] = old
        else:
            tasks.append({"root": str(c.root), "source": c.source, "clip": c.clip, "out": str(out),
                          "config": asdict(cfg), "settings_hash": settings, "input_hash": input_hash})
    if tasks:
        for task in tasks:
            task["refs"] = refs
        for v in run_tasks(filter_task, tasks, workers=workers, ray_address=ray_address, desc="filter",
                           unit="clip"):
            verdicts[v["clip"]] = v
    report = build_report([verdicts[c.key] for c in clips])
    write_json(out / "report.json", report)
    return report | {"already_done": len(clips) - len(tasks)}  # what this run skipped (not in report.json)


def build_report(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals, removals by reason, and every clip's verdict."""
    removed = [v for v in verdicts if not v["kept"]]
    keep_keys = ("clip", "kept", "reason", "n_frames", "person", "track_id", "distance", "visible", "distances",
                 "sync", "detail")
    return {
        "clips": len(verdicts), "kept": len(verdicts) - len(removed), "removed": len(removed),
        "kept_seconds": sum(v["n_frames"] for v in verdicts if v["kept"]) / FPS,
        "by_reason": dict(Counter(v["reason"] for v in removed)),
        "verdicts": [{k: v[k] for k in keep_keys if k in v} for v in verdicts],
    }
