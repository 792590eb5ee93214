"""Faces of a whole media file (still or video): detect, track, and remember the result in the cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lipdub.faces import cache, identity
from lipdub.faces.config import FaceSettings
from lipdub.faces.detect import shared_detector, shared_lock
from lipdub.faces.tracker import Tracker, thumbnail
from lipdub.faces.tracks import FaceTracks

# progress(done, total): frames analysed so far, of the video's frame count
Progress = Callable[[int, int], None]


def analyze(path: str | os.PathLike[str], *, fps: float | None = None, use_cache: bool = True,
            progress: Progress | None = None, settings: FaceSettings | None = None) -> FaceTracks:
    """Detect and track every face of `path` (frames at `fps`, default the video's own rate).

    A cache hit (same content, settings, fps) skips detection entirely. Without a `progress` callback a
    tqdm bar is shown for videos. Raises MediaError for unreadable media; no face is not an error here
    (`select` raises NoFaceError).
    """
    from lipdub.media import probe
    from lipdub.media.info import check_exists

    settings = settings or FaceSettings()
    check_exists(path)
    key = cache.cache_key(path, settings, _key_rate(path, fps))
    if use_cache and (hit := cache.load(key)) is not None:  # a hit needs no probing or decoding at all
        hit.source = str(path)
        return hit
    info = probe(path)
    if info.kind == "audio":
        from lipdub.errors import MediaError

        raise MediaError("is audio only: faces need a photo or a video", path)
    tracks = _analyze_image(path, settings) if info.kind == "image" else _analyze_video(
        path, fps or info.fps or 25.0, info.num_frames, settings, progress)
    if use_cache:
        cache.store(key, tracks)
    return tracks


def _key_rate(path: str | os.PathLike[str], fps: float | None) -> str | None:
    """The requested rate as the cache sees it: None when it is the video's own rate, so a caller passing
    the native fps (the pipeline) and one passing nothing (the web app's face picker) share one entry."""
    if fps is None:
        return None
    from lipdub.media.info import as_rate, timeline

    rate = as_rate(fps)
    try:
        native = timeline(path)  # a demux pass, no decoding; cached per process
    except Exception:  # noqa: BLE001 - unreadable media is reported by probe() on the miss path
        native = None
    return None if native is not None and native.rate == rate else str(rate)


def _analyze_image(path: str | os.PathLike[str], settings: FaceSettings) -> FaceTracks:
    from lipdub.media import read_image

    image = read_image(path)
    with shared_lock():
        faces = shared_detector(settings).faces(image)
    for i, face in enumerate(faces):
        face.track_id = i
    return FaceTracks.from_faces(
        [faces], width=image.shape[1], height=image.shape[0], source=str(path),
        chips={f.track_id: identity.chip(image, f) for f in faces},
        thumbs={f.track_id: thumbnail(image, f) for f in faces},
        best_frame={f.track_id: 0 for f in faces})


def _analyze_video(path: str | os.PathLike[str], fps: float, total: int, settings: FaceSettings,
                   progress: Progress | None) -> FaceTracks:


    with shared_lock():
        return _track_video(path, fps, total, settings, progress)


def _track_video(path: str | os.PathLike[str], fps: float, total: int, settings: FaceSettings,
                 progress: Progress | None) -> FaceTracks:
    from tqdm import tqdm

    from lipdub.media import iter_frames

    tracker = Tracker(fps, settings, detector=shared_detector(settings))
    bar = None if progress else tqdm(total=total, desc=f"faces {Path(path).name}", unit="frame", leave=False,
                                     disable=None, mininterval=1.0)
    try:
        for i, frame in enumerate(iter_frames(path, fps=fps)):
            tracker.step(frame)
            if progress:
                progress(i + 1, max(total, i + 1))
            elif bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        tracker.close()
    return tracker.result(source=str(path))

