"""Benchmark lipdub.media: 720p H.264 encode and decode speed, backward (ping-pong) access, peak memory.

Run: python benchmarks/bench_media.py [--seconds 10]. Makes its own test video in a temp folder.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from common import cold_home  # benchmarks/common.py (scripts run from benchmarks/)

from lipdub.media import FrameSource, VideoWriter, iter_frames, load_audio, probe


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
        t0 = time.perf_counter()
        with VideoWriter(path, fps, audio=audio, audio_rate=16000) as writer:
            for i in range(n):
                writer.write(frames[i % len(frames)])
        encode = time.perf_counter() - t0
        info = probe(path)
        print(f"file: {info.width}x{info.height} {info.num_frames} frames, {path.stat().st_size / 1e6:.1f} MB")
        print(f"encode 720p H.264+AAC (crf 18, preset fast): {n / encode:6.1f} fps"
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
