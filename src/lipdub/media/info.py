"""What a media file holds (`probe`): stills vs video decided by content, the constant-rate frame timeline."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Literal

import av
from PIL import Image, UnidentifiedImageError

from lipdub.errors import MediaError

MIN_SIDE = 8  # px; anything smaller cannot hold a face
# PIL formats where several frames mean an animation FFmpeg decodes (GIF, APNG). Not MPO/TIFF pages, and not
# animated WebP, which FFmpeg cannot decode: it is read as its first frame.
_ANIMATED = {"GIF", "PNG"}
_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that transpose the picture


@dataclass(frozen=True)
class MediaInfo:
    """A media file's shape. Sizes are as displayed (after rotation), i.e. the shape `iter_frames` yields.

    `fps` is the default constant output rate (None for stills and audio); `num_frames` is the exact number of
    frames `iter_frames(path)` yields; `duration` is the video stream's span (audio: the audio's, stills: 0).
    `rotation` is the display matrix's counter-clockwise turn (0/90/180/270) already applied to frames.
    """

    path: str
    kind: Literal["image", "video", "audio"]
    width: int | None
    height: int | None
    fps: float | None
    num_frames: int  # 1 for stills, 0 for audio
    duration: float  # seconds
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    rotation: int = 0


@dataclass(frozen=True)
class Timeline:
    """A video stream's time span in stream ticks and its constant output rate."""

    stream_index: int
    time_base: Fraction
    start: int  # first presentation timestamp (ticks)
    end: int  # last frame's pts + its duration (ticks)
    rate: Fraction  # default output rate: the average rate (or the timestamp grid's rate, see _grid_rate)

    def num_frames(self, fps: Fraction) -> int:
        """Frames at `fps` covering [start, end): exact, with a 1% of a frame tolerance for rate rounding."""
        frames = (self.end - self.start) * self.time_base * fps
        return max(1, math.ceil(frames - Fraction(1, 100)))

    def tick(self, index: int, fps: Fraction) -> Fraction:
        """Stream time (ticks, exact) at which output frame `index` is shown."""
        return self.start + Fraction(index) / fps / self.time_base

    @property
    def slack(self) -> Fraction:
        """Timestamp rounding tolerated when matching frames to ticks: 1 ms (containers like mkv round to it)."""
        return max(Fraction(1), Fraction(1, 1000) / self.time_base)


def as_rate(fps: float | Fraction | int) -> Fraction:
    """A frame rate as an exact fraction; NTSC-style rates snap to n*1000/1001 (29.97 -> 30000/1001)."""
    if isinstance(fps, Fraction):
        return fps
    if fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"frame rate must be positive, got {fps}")
    if abs(fps - round(fps)) < 1e-6:
        return Fraction(round(fps))
    ntsc = fps * 1001 / 1000
    if abs(ntsc - round(ntsc)) < 2e-3:
        return Fraction(round(ntsc) * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def check_exists(path: str | os.PathLike[str]) -> Path:
    """The path, or MediaError if it is not a readable file."""
    p = Path(path)
    if not p.exists():
        raise MediaError("file not found", p)
    if p.is_dir():
        raise MediaError("is a folder, not a media file", p)
    return p


def open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open a media file with PyAV, turning failures into a one-line MediaError."""
    p = check_exists(path)
    try:
        return av.open(str(p), "r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise MediaError("not a readable image, video or audio file", p) from err


def still_image(path: str | os.PathLike[str]) -> Image.Image | None:
    """The file opened with PIL if its content is a single still picture (also one-frame GIFs), else None."""
    try:
        im = Image.open(path)
    except Image.DecompressionBombError as err:
        raise MediaError("image has too many pixels to be a photo (decompression bomb?)", path) from err
    except (UnidentifiedImageError, OSError):
        return None
    if im.format in _ANIMATED and getattr(im, "n_frames", 1) > 1:
        im.close()
        return None
    return im


def oriented_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) of a PIL image as displayed, i.e. after its EXIF orientation."""
    orientation = im.getexif().get(0x0112, 1)
    return (im.height, im.width) if orientation in _SWAPS_SIDES else (im.width, im.height)


def video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The first real video stream (cover art in audio files is not video), or None."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def check_size(width: int, height: int, path: str | os.PathLike[str], what: str) -> None:
    """MediaError if a picture is too small to hold a face."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise MediaError(f"{what} is {width}x{height} px, too small to hold a face", path)


@lru_cache(maxsize=64)
def _timeline_cached(path: str, mtime_ns: int, size: int) -> Timeline | None:
    with open_input(path) as container:
        stream = video_stream(container)
        if stream is None:
            return None
        tb = Fraction(stream.time_base or Fraction(1, 90000))
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        default_dur = round(1 / (rate * tb)) if rate else 0
        stamps: list[int] = []
        end: int | None = None
        try:
            for packet in container.demux(stream):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or not packet.size or packet.is_discard:
                    continue  # flush packets, and frames an edit list cuts (negative-pts B-frames)
                stamps.append(ts)
                end = max(end if end is not None else ts, ts + (packet.duration or default_dur))
        except av.FFmpegError as err:
            if not stamps:
                raise MediaError("video stream cannot be read", path) from err
        if not stamps or end is None:
            raise MediaError("video stream has no frames", path)
        start = min(stamps)
        if end <= start:  # single frame with no duration
            end = start + (default_dur or 1)
        if not rate:
            rate = Fraction(len(stamps)) / ((end - start) * tb)
        rate = _grid_rate(stamps, start, tb, Fraction(rate), stream.base_rate)
        return Timeline(stream.index, tb, start, end, rate)


def _grid_rate(stamps: list[int], start: int, tb: Fraction, average: Fraction, base: Fraction | None) -> Fraction:
    """The default output rate: the average, or for variable-rate video whose timestamps all sit on a finer
    regular grid (a 30 fps phone clip that drops to 15 fps in low light) that grid's rate, so no frame is lost."""
    if not base or not average * Fraction(101, 100) < base <= min(4 * average, 120):
        return average
    slack = max(Fraction(1), Fraction(1, 1000) / tb)
    ordered = sorted(stamps)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    if not gaps or max(gaps) - min(gaps) <= 2 * slack:
        return average  # constant rate (up to timestamp rounding)
    step = 1 / (Fraction(base) * tb)  # ticks per grid slot
    on_grid = all(abs((t - start) - round((t - start) / step) * step) <= slack for t in stamps)
    return Fraction(base) if on_grid else average


def timeline(path: str | os.PathLike[str]) -> Timeline | None:
    """The first video stream's timeline from a demux pass (no decoding), cached; None if no video stream."""
    p = check_exists(path).resolve()
    st = p.stat()
    return _timeline_cached(str(p), st.st_mtime_ns, st.st_size)


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a media file: still image, video (possibly animated GIF) or audio. Raises MediaError."""
    p = check_exists(path)
    im = still_image(p)
    if im is not None:
        with im:
            width, height = oriented_size(im)
        check_size(width, height, p, "image")
        return MediaInfo(str(p), "image", width, height, None, 1, 0.0, False, None, None, 0)
    with open_input(p) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_rate = audio.codec_context.sample_rate if audio else None
        audio_channels = audio.codec_context.channels if audio else None
        video = video_stream(container)
        if video is None:
            if audio is None:
                raise MediaError("has no video or audio stream", p)
            return MediaInfo(str(p), "audio", None, None, None, 0, _audio_duration(container, audio),
                             True, audio_rate, audio_channels, 0)
        first = _first_frame(container, video, p)
    tl = timeline(p)
    assert tl is not None
    rotation = int(first.rotation) % 360
    width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
    check_size(width, height, p, "video")
    return MediaInfo(str(p), "video", width, height, float(tl.rate), tl.num_frames(tl.rate),
                     float((tl.end - tl.start) * tl.time_base), audio is not None, audio_rate, audio_channels,
                     rotation)


def _first_frame(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as err:
        raise MediaError("not a readable image or video (its picture cannot be decoded)", path) from err
    raise MediaError("not a readable image or video (no picture in it)", path)


def _audio_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0
