"""Benchmark lipdub.media: 720p H.264 encode and decode speed, backward (ping-pong) access, peak memory.

Encoding: the RGB -> yuv420p conversion (OpenCV in the caller's thread now, swscale before) and the whole
writer, each against swscale in the encoder thread (the writer before issue 21), runs alternated.
Run: python benchmarks/bench_media.py [--seconds 10]. Makes its own test video in a temp folder.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from common import cold_home  # benchmarks/common.py (scripts run from benchmarks/)

from lipdub.media import FrameSource, VideoWriter, iter_frames, load_audio, probe
from lipdub.media.writer import Yuv420, swscale_yuv420
from lipdub.settings import get_settings


def synthetic_frames(n: int, width: int = 1280, height: int = 720):
    """A moving textured scene (gradients + a bright square + mild noise), cheap to generate."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (width + height)], -1)
    base = (base + rng.integers(0, 24, base.shape)).clip(0, 255).astype(np.uint8)
    for i in range(n):
        frame = np.roll(base, 4 * i, axis=1)
        x = (13 * i) % (width - 200)
        frame[260:460, x:x + 200] = (240, 220, 200)
        yield frame


class SwscaleWriter(VideoWriter):
    """The writer before issue 21: the caller queues an RGB frame, the encoder thread converts it with swscale."""

    def _video_frame(self, rgb: np.ndarray) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(rgb, format="rgb24")

    def _write_video(self, index: int, frame: av.VideoFrame) -> None:
        super()._write_video(index, frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG"))


def timed(fn, *args) -> tuple[float, float]:
    """(wall s, CPU s of all threads) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0


def bench_conversion(frames: list[np.ndarray], n: int, rounds: int = 3) -> None:
    """CPU per 720p frame of both conversions (alternated; least wall, least CPU) and their largest difference."""
    opencv = Yuv420(frames[0].shape[1], frames[0].shape[0])
    ways = {"swscale (before)": swscale_yuv420, "OpenCV Yuv420 (now)": opencv}
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, convert in ways.items():
            run = timed(lambda c=convert: [c(frames[i % len(frames)]) for i in range(n)])
            best[name] = tuple(map(min, best.get(name, run), run))
    for name, (wall, cpu) in best.items():
        print(f"RGB -> yuv420p 720p, {name:20s} {1e3 * cpu / n:5.2f} ms CPU/frame  {1e3 * wall / n:5.2f} ms wall")
    diff = max(np.abs(opencv(f).to_ndarray().astype(int) - swscale_yuv420(f).to_ndarray()).max() for f in frames)
    print(f"largest difference to swscale over {len(frames)} frames: {diff} level(s)")


def bench_writers(path: Path, frames: list[np.ndarray], n: int, audio: np.ndarray, rounds: int = 3) -> None:
    """The writer (settings' crf and preset, + AAC) before and now, alternated: best fps and CPU per frame."""
    settings = get_settings()

    def write(kind: type[VideoWriter]) -> None:
        with kind(path, 25, audio=audio, audio_rate=16000, crf=settings.crf, preset=settings.preset) as writer:
            for i in range(n):
                writer.write(frames[i % len(frames)])

    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for kind in (SwscaleWriter, VideoWriter):
            run = timed(write, kind)
            best[kind.__name__] = tuple(map(min, best.get(kind.__name__, run), run))
    for name, (wall, cpu) in best.items():
        label = "before (swscale)" if name == "SwscaleWriter" else "now (OpenCV)"
        print(f"write 720p H.264+AAC (crf {settings.crf}, preset {settings.preset}), {label:16s} {n / wall:6.1f} fps"
              f"  {1e3 * cpu / n:5.1f} ms CPU/frame")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    cold_home()
    fps = 25
    n = int(args.seconds * fps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_720p.mp4"
        audio = (0.2 * np.sin(np.arange(int(args.seconds * 16000)) / 5)).astype(np.float32)
        frames = list(synthetic_frames(min(n, 50)))  # generated up front so only encoding is timed
        bench_conversion(frames, min(n, 100))
        bench_writers(path, frames, n, audio)
        info = probe(path)
        print(f"file: {info.width}x{info.height} {info.num_frames} frames, {path.stat().st_size / 1e6:.1f} MB"
              f"   (peak RSS so far {peak_rss_mb():.0f} MB, incl. {len(frames)} input frames)")

        t0 = time.perf_counter()
        count = sum(1 for _ in iter_frames(path))
        decode = time.perf_counter() - t0
        print(f"decode 720p iter_frames:                      {count / decode:6.1f} fps")
        del frames

        source = FrameSource(path)
        t0 = time.perf_counter()
        count = sum(1 for _ in source.frames(reversed(range(source.num_frames))))
        backward = time.perf_counter() - t0
        print(f"decode 720p FrameSource backward:             {count / backward:6.1f} fps "
              f"(chunk {source.chunk} frames)")

        t0 = time.perf_counter()
        load_audio(path)
        print(f"load_audio (AAC -> 16 kHz):                   {time.perf_counter() - t0:6.3f} s for {args.seconds:g} s")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
