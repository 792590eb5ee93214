"""Stand-ins for `pipeline.animate` that the web tests inject: quick, slow, failing and crashing jobs.

They run in the job's spawned process, so they live in an importable module (not a conftest)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import av
import numpy as np

from lipdub.errors import NoFaceError
from lipdub.pipeline import AnimateRequest, AnimateResult


def write_video(path: Path, frames: int = 10, fps: int = 10) -> None:
    """A small real H.264 mp4 (grey ramp), written to a temp name and renamed like the real pipeline."""
    tmp = path.with_name(path.name + ".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            img = np.full((48, 64, 3), 20 * i % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    os.replace(tmp, path)


def _record(request: AnimateRequest) -> None:
    from lipdub.settings import get_settings

    seen = dataclasses.asdict(request) | {"threads": get_settings().threads}
    (request.output.parent / "request.json").write_text(json.dumps(seen, default=str))


def quick(request: AnimateRequest, progress) -> AnimateResult:
    _record(request)
    for stage in ("detecting", "generating", "encoding"):
        for i in range(3):
            progress(stage, i + 1, 3)
    write_video(request.output)
    return AnimateResult(output=request.output, frames=10, fps=10.0, duration=1.0, engine="fake", speakers=[],
                         notes=["made by the test runner"])


def slow(request: AnimateRequest, progress) -> AnimateResult:
    """Leaves a partial file and reports progress for up to a minute (cancel tests stop it)."""
    _record(request)
    (request.output.parent / "partial.tmp").write_bytes(b"x" * 1000)
    seconds = float(os.environ.get("WEB_TEST_SLOW_SECONDS", "60"))
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        progress("generating", int(100 * (time.monotonic() - t0) / seconds), 100)
        time.sleep(0.05)
    write_video(request.output)
    return AnimateResult(output=request.output, frames=10, fps=10.0, duration=1.0, engine="fake", speakers=[])


def no_face(request: AnimateRequest, progress) -> AnimateResult:
    raise NoFaceError("no face found in the first frame", request.media)


def crash(request: AnimateRequest, progress) -> AnimateResult:
    progress("detecting", 0, 1)
    os._exit(3)
