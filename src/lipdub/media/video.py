"""Decode video to RGB frames at a constant rate: sequential streaming and bounded random access."""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from fractions import Fraction
from itertools import chain

import av
import numpy as np

from lipdub.errors import MediaError
from lipdub.media.image import read_image
from lipdub.media.info import Timeline, as_rate, open_input, probe, timeline
from lipdub.media.threads import prefetch

CACHE_BYTES = 256 * 2**20  # decoded frames kept for backward runs (at most MAX_CHUNK frames)
MAX_CHUNK = 64
UNSPECIFIED = 2  # AVColorSpace code of an untagged stream
FORWARD_SKIP = 300  # decode forward rather than seek when the wanted frame is at most this far ahead
# RGB frames decoded ahead of the caller: a generator batch (8) at 720p, so the next batch decodes while the
# network runs; 3 at 1080p (each waiting frame costs memory, 2.6 MiB at 720p)
PREFETCH_BYTES = 24 * 2**20


def prefetch_depth(width: int, height: int) -> int:
    """How many decoded frames of this size wait for the caller at most."""
    return int(min(8, max(2, PREFETCH_BYTES // max(1, width * height * 3))))


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame, turned upright per its display matrix.

    Uses the frame's tagged matrix and range; untagged HD (>= 720 lines) is taken as BT.709, SD as BT.601,
    as players do.
    """
    untagged_hd = frame.colorspace == UNSPECIFIED and min(frame.width, frame.height) >= 720
    rgb = frame.to_ndarray(format="rgb24", src_color_range=frame.color_range or None,
                           src_colorspace="ITU709" if untagged_hd else None)
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns)) if quarter_turns else rgb


def _video_timeline(path: str | os.PathLike[str]) -> Timeline:
    tl = timeline(path)
    if tl is None:
        raise MediaError("has no video stream (a picture or video is needed)", path)
    return tl


def _decoded(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order; undecodable packets are skipped (as players do)."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            continue


def _open_stream(path: str | os.PathLike[str], tl: Timeline, threads: int = 0):
    """The input and its video stream, decoded by `threads` threads (0: FFmpeg's choice, cores + 1 frame threads)."""
    container = open_input(path)
    stream = container.streams[tl.stream_index]
    stream.thread_type = "AUTO"
    if threads:
        stream.codec_context.thread_count = threads
    return container, stream


def _after_seek(container, stream, tl: Timeline, target: Fraction) -> Iterator[av.VideoFrame] | None:
    """Frames from a keyframe at or before `target` ticks on, or None if seeking cannot get there."""
    back = Fraction(0)
    second = 1 / tl.time_base
    for _ in range(8):
        seek_to = int(target - back)
        if seek_to <= tl.start:
            return None
        container.seek(seek_to, stream=stream, backward=True, any_frame=False)
        frames = _decoded(container, stream)
        key = next((f for f in frames if f.key_frame and f.pts is not None), None)
        if key is None:
            return None
        if key.pts <= target + tl.slack:
            rest = (f for f in frames if f.pts is None or f.pts > key.pts)
            return chain([key], rest)
        back = max(2 * back, second)
    return None


def _decode_from(path: str | os.PathLike[str], tl: Timeline, fps: Fraction, first: int, threads: int = 0,
                 ) -> Iterator[tuple[int, av.VideoFrame]]:
    """(k, frame shown at output frame k) for k = first .. n-1 of the constant-rate stream.

    Frame k is the last decoded frame with pts <= start + k/fps (+1 ms for rounded container timestamps;
    the first frame before it exists).
    """
    n = tl.num_frames(fps)
    container, stream = _open_stream(path, tl, threads)
    try:
        frames = _after_seek(container, stream, tl, tl.tick(first, fps)) if first > 0 else None
        if frames is None and first > 0:  # seeking failed: decode from the very beginning
            container.close()
            container, stream = _open_stream(path, tl, threads)
        if frames is None:
            frames = _decoded(container, stream)
        k, held, last_pts = first, None, None
        for frame in frames:
            pts = frame.pts if frame.pts is not None else (tl.start if last_pts is None else last_pts) + 1
            last_pts = pts
            if held is not None:
                while k < n and tl.tick(k, fps) + tl.slack < pts:
                    yield k, held
                    k += 1
                if k >= n:
                    return
            held = frame
        if held is None:
            raise MediaError("video stream has no decodable frames", path)
        while k < n:
            yield k, held
            k += 1
    finally:
        container.close()


def _rgb_frames(pairs: Iterable[tuple[int, av.VideoFrame]]) -> Iterator[tuple[int, np.ndarray]]:
    """Convert to RGB once per decoded frame; repeated frames are fresh copies (callers may edit them)."""
    last: av.VideoFrame | None = None
    rgb = None
    for k, frame in pairs:
        if frame is last and rgb is not None:
            yield k, rgb.copy()
        else:
            last, rgb = frame, frame_to_rgb(frame)
            yield k, rgb


def iter_frames(path: str | os.PathLike[str], fps: float | None = None, start: int = 0,
                ahead: int | None = None, threads: int = 0) -> Iterator[np.ndarray]:
    """RGB frames of a video (or the single frame of a still) at a constant rate, from frame `start` on.

    Variable-frame-rate input is resampled by timestamp: the frame at time t is the last one with pts <= t
    (1 ms slack for containers that round timestamps, e.g. 29.97 fps in mkv's 1 ms time base).
    `fps` defaults to the stream's average rate. The file is checked at call time (MediaError); frames are
    decoded a few ahead of the caller in a background thread (bounded memory; closing the iterator stops it):
    `ahead` at most (default `prefetch_depth`); `threads` decoder threads (default 0: FFmpeg's choice).
    """
    info = probe(path)
    if info.kind == "image":
        return iter([read_image(path)] if start == 0 else [])
    tl = _video_timeline(path)
    rate = as_rate(fps) if fps else tl.rate
    return prefetch(lambda: (rgb for _, rgb in _rgb_frames(_decode_from(path, tl, rate, start, threads))),
                    ahead or prefetch_depth(info.width or 0, info.height or 0))


class _Peek:
    """An iterator with one element of lookahead."""

    _END = object()

    def __init__(self, items: Iterable[int]) -> None:
        self._it = iter(items)
        self._next = next(self._it, self._END)

    def __iter__(self) -> Iterator[int]:
        while self._next is not self._END:
            item, self._next = self._next, next(self._it, self._END)
            yield item  # type: ignore[misc]

    @property
    def peek(self) -> int | None:
        return None if self._next is self._END else self._next  # type: ignore[return-value]


class FrameSource:
    """Frames of a video or still by index at a constant rate, for forward, backward and ping-pong runs.

    Forward runs decode sequentially; a backward run is decoded in chunks (seek to a keyframe before the
    chunk, decode forward into a bounded cache, hand out in reverse), so memory stays bounded. Frame k is
    exactly the k-th frame `iter_frames(path, fps)` would give. Yielded arrays are the caller's to modify.
    A video's frames are decoded a few ahead of the caller in a background thread (see `frames`).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None) -> None:
        self.path = str(path)
        self.info = probe(path)
        self._still: np.ndarray | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cursor: Iterator[tuple[int, av.VideoFrame]] | None = None
        self._last: tuple[av.VideoFrame | None, np.ndarray | None] = (None, None)
        self._cursor_next = 0
        self._lock = threading.Lock()  # one decoder state, shared by the runs of `frames`
        self._runs: weakref.WeakSet = weakref.WeakSet()
        if self.info.kind == "image":
            self._still = read_image(path)
            self.fps: float | None = float(fps) if fps else None
            self.num_frames = 1
            self.size = (self._still.shape[1], self._still.shape[0])
            return
        self._tl = _video_timeline(path)
        self._rate = as_rate(fps) if fps else self._tl.rate
        self.fps = float(self._rate)
        self.num_frames = self._tl.num_frames(self._rate)
        self.size = (int(self.info.width or 0), int(self.info.height or 0))
        frame_bytes = max(1, self.size[0] * self.size[1] * 3)
        self.chunk = int(min(MAX_CHUNK, max(4, CACHE_BYTES // frame_bytes)))

    def __len__(self) -> int:
        return self.num_frames

    def close(self) -> None:
        """Stop running `frames` iterators; release the decoder and the cached frames (also done when the source
        is garbage collected)."""
        for run in list(self._runs):
            run.close()
        with self._lock:
            if self._cursor is not None:
                self._cursor.close()  # type: ignore[attr-defined]
            self._cursor, self._last = None, (None, None)
            self._cache.clear()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self, indices: Iterable[int]) -> Iterator[np.ndarray]:
        """RGB frames for `indices` (any order; forward and backward runs are efficient).

        A video's frames are decoded ahead in a background thread, at most `prefetch_depth` frames; `indices`
        is read there too. Decoding errors (and IndexError) are raised by the iterator; closing it, or
        `close()`, stops the thread.
        """
        if self._still is not None:
            return self._frames(indices)
        run = prefetch(lambda: self._frames(indices), prefetch_depth(*self.size))
        self._runs.add(run)
        return run

    def _frames(self, indices: Iterable[int]) -> Iterator[np.ndarray]:
        wanted = _Peek(indices)
        previous: int | None = None
        for k in wanted:
            if not 0 <= k < self.num_frames:
                raise IndexError(f"{self.path}: frame {k} out of range 0..{self.num_frames - 1}")
            if self._still is not None:
                yield self._still.copy()
                continue
            backward = previous == k + 1 or wanted.peek == k - 1
            with self._lock:
                frame = self._get(k, backward).copy()
            yield frame
            previous = k

    def _get(self, k: int, backward: bool) -> np.ndarray:
        if k in self._cache:
            return self._cache[k]
        if self._cursor is None or not self._cursor_next <= k < self._cursor_next + FORWARD_SKIP:
            first = max(0, k - self.chunk + 1) if backward else k
            self._cursor = _decode_from(self.path, self._tl, self._rate, first)
            self._cursor_next = first
        for j, frame in self._cursor:
            self._cursor_next = j + 1
            if j <= k - self.chunk:
                continue  # skipped over: never converted
            if frame is not self._last[0]:
                self._last = (frame, frame_to_rgb(frame))
            self._cache[j] = self._last[1]
            while len(self._cache) > self.chunk:
                self._cache.popitem(last=False)
            if j == k:
                return self._last[1]
        raise AssertionError(f"frame {k} not decoded from {self.path}")  # pragma: no cover
