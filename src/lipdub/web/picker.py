"""The face picker: every person of a picture or video, with a thumbnail from their best view and the time spans
of their tracks (one per shot they appear in), computed in one long-lived helper process (warm models; the server
never computes).

It lists `faces.analyze`'s persons, the same cached analysis the job uses, so the ids it returns are the person ids
the pipeline's `face_id` means. Everything that knows the shape of `FaceTracks` is in `list_faces`."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import multiprocessing as mp
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from PIL import Image

from lipdub.errors import LipdubError, MediaError, NoFaceError
from lipdub.web.store import Upload

log = logging.getLogger(__name__)
THUMB = 96


def detect(upload: Upload) -> list[dict]:
    """The persons of `upload` for the picker (see `list_faces`), from the cached analysis of the whole file."""
    from lipdub.faces import analyze

    try:
        tracks = analyze(upload.path, use_cache=True)
    except NoFaceError:
        return []
    except MediaError as err:
        raise MediaError(err.problem, upload.name) from err
    return list_faces(tracks, upload.info.get("fps"))


def list_faces(tracks, fps: float | None) -> list[dict]:
    """One entry per person, numbered by first appearance then left to right: id (the job's `face_id`), its box in
    the first frame (None if it is not in it), when it is on screen (seconds: overall, and one span per track, so
    a person seen in two shots has two spans) and a JPEG thumbnail of its best view."""
    rate = float(tracks.fps or fps or 0) or None
    first = {int(f.person_id): f for f in tracks.faces_in(0)}
    rows = sorted(tracks.person_summary(), key=lambda r: (r["first_frame"], r["box"][0]))
    out = []
    for number, row in enumerate(rows, start=1):
        pid, face = row["id"], first.get(row["id"])
        thumb = _best_thumb(tracks, [t["id"] for t in row["tracks"]])
        out.append({"id": pid, "number": number,
                    "box": [round(float(v), 1) for v in face.box] if face is not None else None,
                    "score": round(float(face.score), 3) if face is not None else None,
                    "start": _seconds(row["first_frame"], rate), "end": _seconds(row["last_frame"] + 1, rate),
                    "spans": [[_seconds(t["first_frame"], rate), _seconds(t["last_frame"] + 1, rate)]
                              for t in row["tracks"]],
                    "thumbnail": _data_url(thumb) if thumb is not None else None})
    return out


def _best_thumb(tracks, track_ids: list[int]) -> np.ndarray | None:
    """The thumbnail of the track whose best frame shows the face largest."""
    def area(tid: int) -> float:
        rows = (tracks.track_index == tid) & (tracks.frame_index == tracks.best_frame.get(tid, -1))
        boxes = tracks.boxes[rows]
        return float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).max()) if len(boxes) else 0.0

    shown = [t for t in track_ids if t in tracks.thumbs]
    return tracks.thumbs[max(shown, key=area)] if shown else None


def _seconds(frame: int, rate: float | None) -> float:
    return round(frame / rate, 2) if rate else 0.0


def _data_url(rgb: np.ndarray) -> str:
    img = Image.fromarray(np.asarray(rgb, np.uint8))
    img.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def warm_up() -> None:
    """Load the face detector once, so the first picker request answers quickly."""
    import numpy as np

    from lipdub.faces import detect_faces

    detect_faces(np.zeros((64, 64, 3), np.uint8))


class ClientGone(Exception):
    """The client of a picker request disconnected; its detection was stopped."""


class FacePicker:
    """`await picker.faces(upload, gone)` runs `detect` in one of up to `size` spawned helper processes, so one
    long video does not hold up other visitors. A helper whose client has gone (`await gone()` is true) is killed
    mid-detection and replaced; one that crashes is replaced too."""

    def __init__(self, warm: bool = True, size: int = 2) -> None:
        self.warm, self.size = warm, size
        self._idle: list[ProcessPoolExecutor] = []
        self._count = 0
        self._lock = threading.Lock()

    def _new(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
        if self.warm:
            pool.submit(warm_up).add_done_callback(
                lambda f: f.exception() and log.debug("warm-up failed: %s", f.exception()))
        return pool

    def start(self) -> None:
        """With `warm`, start one helper now and load its detector (a fast first answer)."""
        if self.warm:
            with self._lock:
                if self._count == 0:
                    self._idle.append(self._new())
                    self._count = 1

    def _take(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._count < self.size:
                self._count += 1
                return self._new()
        return None

    def _give_back(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            self._idle.append(pool)

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            self._count -= 1
        _terminate(pool)

    async def faces(self, upload: Upload, gone: Callable[[], Awaitable[bool]] | None = None) -> list[dict]:
        pool = self._take()
        while pool is None:  # every helper is busy: wait for one, unless the client leaves meanwhile
            if gone is not None and await gone():
                raise ClientGone()
            await asyncio.sleep(0.1)
            pool = self._take()
        future = asyncio.wrap_future(pool.submit(detect, upload))
        try:
            while not (await asyncio.wait({future}, timeout=0.25))[0]:
                if gone is not None and await gone():
                    raise ClientGone()
            faces = future.result()
        except (ClientGone, BrokenProcessPool, asyncio.CancelledError) as err:
            self._discard(pool)
            if isinstance(err, BrokenProcessPool):
                raise LipdubError("face detection crashed on this file", upload.name) from err
            raise
        except BaseException:
            self._give_back(pool)
            raise
        self._give_back(pool)
        return faces

    def stop(self) -> None:
        with self._lock:
            idle, self._idle, self._count = self._idle, [], 0
        for pool in idle:
            _terminate(pool)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the helper now, even mid-detection (a long video must not hold the server's exit)."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
