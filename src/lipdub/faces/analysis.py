"""Faces of a whole media file (still or video): detect, track, and remember the result in the cache."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from lipdub.faces import cache, identity
from lipdub.faces.config import FaceSettings
from lipdub.faces.detect import shared_detector, shared_lock
from lipdub.faces.tracker import Tracker, thumbnail
from lipdub.faces.tracks import FaceTracks
from lipdub.media.threads import END, put_unless

# progress(done, total): frames analysed so far, of the video's frame count
Progress = Callable[[int, int], None]
# frames the decoder keeps ready for a background analysis: the frames its caller waits for wait in its own queue,
# so the decoder need only keep the tracker busy (the default, 8 at 720p, held ~16 MiB more for nothing)
DECODE_AHEAD = 2
# and decodes on one thread: it keeps far ahead of the tracker (720p: ~7 ms a frame against the tracker's tens), while
# FFmpeg's frame threads (cores + 1) each hold a frame in flight and a context of their own, ~8 MiB more at 720p
DECODE_THREADS = 1


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
        tracker = Tracker(fps, settings, detector=shared_detector(settings))
        return _track_video(path, tracker, total, progress)


def _track_video(path: str | os.PathLike[str], tracker: Tracker, total: int, progress: Progress | None,
                 guard: contextlib.AbstractContextManager | None = None,
                 hand: Callable[[np.ndarray], None] | None = None, ahead: int | None = None,
                 threads: int = 0) -> FaceTracks:
    """Decode `path` at the tracker's rate (`ahead` frames decoded ahead at most, by `threads` decoder threads, see
    `iter_frames`) and track every frame. `guard` (a lock) is held while the tracker changes; `hand(frame)` gets each
    frame once it is tracked."""
    from tqdm import tqdm

    from lipdub.media import iter_frames

    guard = guard or contextlib.nullcontext()
    bar = None if progress else tqdm(total=total, desc=f"faces {Path(path).name}", unit="frame", leave=False,
                                     disable=None, mininterval=1.0)
    frames = iter_frames(path, fps=tracker.fps, ahead=ahead, threads=threads)
    try:
        for i, frame in enumerate(frames):
            with guard:
                tracker.step(frame)
            if hand:
                hand(frame)
            if progress:
                progress(i + 1, max(total, i + 1))
            elif bar is not None:
                bar.update(1)
    finally:
        frames.close()
        if bar is not None:
            bar.close()
        with guard:
            tracker.close()
    with guard:
        return tracker.result(source=str(path))


def is_cached(path: str | os.PathLike[str], fps: float | None = None, settings: FaceSettings | None = None) -> bool:
    """Whether `analyze(path, fps=fps)` would be a cache hit (an entry exists; it is not read)."""
    key = cache.cache_key(path, settings or FaceSettings(), _key_rate(path, fps))
    return cache.entry(key).is_file()


class _Stopped(Exception):
    """Ends a background analysis early (its caller closed it)."""


class BackgroundAnalysis:
    """`analyze` of a video in a background thread, for a caller that uses the faces while they are found.

    The thread decodes each frame once, tracks it and hands it on: `frames()` gives the decoded frames in order,
    through a queue of `ahead + fill_gap + 2` frames, so memory stays bounded and a caller that takes a frame,
    then waits for `partial(.., k + ahead)`, never stalls the thread. `partial(start, stop)` waits until frames
    before `stop` are final (`Tracker.final_upto`) and gives them as FaceTracks. `result()` waits for the whole
    video's FaceTracks, equal to `analyze`'s and stored in the cache as it stores them.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, ahead: int, settings: FaceSettings | None = None,
                 progress: Progress | None = None) -> None:
        self.settings = settings or FaceSettings()
        self._progress = progress
        self._cond = threading.Condition()
        self._queue: queue.Queue = queue.Queue(maxsize=ahead + self.settings.fill_gap + 2)
        self._released, self._stop = threading.Event(), threading.Event()
        self._tracker: Tracker | None = None
        self._tracks: FaceTracks | None = None
        self._error: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(path, float(fps)), name="lipdub-faces", daemon=True)
        self._thread.start()

    def _run(self, path: str | os.PathLike[str], fps: float) -> None:
        from lipdub.media import probe

        try:
            key = cache.cache_key(path, self.settings, _key_rate(path, fps))
            total = int(probe(path).num_frames or 0)
            with shared_lock():
                with self._cond:
                    self._tracker = Tracker(fps, self.settings, detector=shared_detector(self.settings))
                tracks = _track_video(path, self._tracker, total, self._report, guard=self._cond, hand=self._hand,
                                      ahead=DECODE_AHEAD, threads=DECODE_THREADS)
            cache.store(key, tracks)
            self._tracks = tracks
        except _Stopped:
            pass
        except BaseException as err:  # noqa: BLE001 - raised to the caller by partial() / result()
            self._error = err
        finally:
            if not self._released.is_set():
                put_unless(self._queue, END, self._released)
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _report(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(done, total)

    def _hand(self, frame: np.ndarray) -> None:
        with self._cond:
            self._cond.notify_all()  # the frame before final_upto() is final now
        if not self._released.is_set():
            put_unless(self._queue, frame, self._released)
        if self._stop.is_set():
            raise _Stopped

    def keep_ahead(self, ahead: int) -> None:
        """From now on hand on at most `ahead + fill_gap + 2` frames before the caller takes them (the frames
        queued beyond it are taken first): the caller learns how far ahead it reads (its batch) once its engine
        is loaded, and every waiting 720p frame is 2.6 MiB."""
        with self._queue.not_full:
            self._queue.maxsize = max(1, ahead + self.settings.fill_gap + 2)
            self._queue.not_full.notify_all()

    def mute(self) -> None:
        """Stop reporting progress (the caller reports its own from now on)."""
        self._progress = None

    def frames(self) -> Iterator[np.ndarray]:
        """The video's decoded frames in order, each once it is tracked (they are the caller's to modify)."""
        while not self._released.is_set():
            item = self._queue.get()
            if item is END:
                return
            yield item

    def release(self) -> None:
        """Take no more frames: the analysis goes on without handing them."""
        self._released.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    def partial(self, start: int, stop: int) -> FaceTracks | None:
        """Frames start..stop-1 as `Tracker.partial` gives them, once final; None once the analysis has ended
        (`result()` then gives the whole video, or raises its error)."""
        with self._cond:
            self._cond.wait_for(lambda: self._done or (self._tracker is not None
                                                       and self._tracker.final_upto() >= stop))
            return None if self._done else self._tracker.partial(start, stop)

    def result(self) -> FaceTracks:
        """The whole video's FaceTracks (waits for the end; raises what the analysis raised)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._tracks is None:
            raise RuntimeError("the face analysis was closed before it ended")
        return self._tracks

    def close(self) -> None:
        """Stop the analysis (at its next frame) and wait for its thread."""
        self._stop.set()
        self.release()
        self._thread.join()
