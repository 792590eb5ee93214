"""Uploads: stream a request body to a generated name in the data dir, check it by decoding, keep its first frame."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
from PIL import Image

from lipdub.errors import LipdubError, MediaError
from lipdub.web.store import Upload

CHUNK = 1 << 20
# container (PyAV/FFmpeg demuxer name) -> suffix stored on disk; decided by content, never by the client's name
SUFFIX = {"jpeg_pipe": ".jpg", "png_pipe": ".png", "webp_pipe": ".webp", "bmp_pipe": ".bmp", "tiff_pipe": ".tif",
          "gif": ".gif", "mov": ".mp4", "matroska": ".mkv", "avi": ".avi", "mpeg": ".mpg", "mpegts": ".ts",
          "flac": ".flac", "wav": ".wav", "mp3": ".mp3", "ogg": ".ogg", "aac": ".aac", "flv": ".flv"}


class UploadTooLarge(LipdubError):
    """The body is bigger than the server's limit."""


def new_id() -> str:
    return uuid.uuid4().hex


async def save_stream(chunks: AsyncIterator[bytes], dest: Path, max_bytes: int) -> int:
    """Write `chunks` to `dest` (a `.part` file), stopping with `UploadTooLarge` past `max_bytes`."""
    size = 0
    try:
        with open(dest, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(f"upload is larger than this server's limit of {mb_text(max_bytes)}")
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size


def mb_text(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n} bytes"


def sniff_suffix(path: Path, name: str) -> str:
    """The suffix for a file's content, from FFmpeg's demuxer probe; `MediaError` if FFmpeg cannot read it."""
    try:
        with av.open(str(path)) as container:
            fmt = container.format.name.split(",")[0]
            if not container.streams.video and not container.streams.audio:
                raise MediaError("has no picture, video or audio stream", name)
    except av.FFmpegError as err:
        raise MediaError("is not a picture, video or audio file this server can read", name) from err
    return SUFFIX.get(fmt, ".bin")


def accept(part: Path, name: str, size: int, final_dir: Path, max_duration: float) -> Upload:
    """Check a received file by decoding it and move it to its generated name; the `Upload` record to store."""
    from lipdub.media import probe

    upload_id = new_id()
    try:
        suffix = sniff_suffix(part, name)
        path = final_dir / f"{upload_id}{suffix}"
        os.replace(part, path)
        try:
            info = probe(path)
        except MediaError as err:
            raise MediaError(err.problem, name) from err
        if info.kind in ("video", "audio") and (info.duration or 0) > max_duration:
            raise MediaError(f"is {info.duration:.1f} s long; this server accepts at most {max_duration:g} s", name)
        if info.kind in ("video", "audio") and not (info.duration or 0) > 0:
            raise MediaError("is empty (no duration)", name)
        if info.kind in ("image", "video"):
            frame = first_frame(path, info.kind, name)
            Image.fromarray(frame).save(frame_path(path), quality=90)
    except BaseException:
        part.unlink(missing_ok=True)
        for leftover in final_dir.glob(f"{upload_id}*"):
            leftover.unlink(missing_ok=True)
        raise
    meta = {k: getattr(info, k, None) for k in ("width", "height", "fps", "num_frames", "duration", "has_audio",
                                                 "audio_rate", "audio_channels")}
    return Upload(upload_id, display_name(name), info.kind, path, size, meta, time.time())


def display_name(name: str) -> str:
    """The client's file name reduced to something safe to show (never used as a path)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in base if c.isprintable())[:120].strip()
    return clean or "upload"


def frame_path(media_path: Path) -> Path:
    return media_path.with_name(media_path.stem + ".frame.jpg")


def first_frame(path: Path, kind: str, name: str) -> np.ndarray:
    """The first decoded frame (RGB); decoding it is the content check for pictures and videos."""
    from lipdub.media import iter_frames, read_image

    try:
        if kind == "image":
            return read_image(path)
        for frame in iter_frames(path):
            return frame
    except MediaError as err:
        raise MediaError(err.problem, name) from err
    raise MediaError("has no decodable video frame", name)
