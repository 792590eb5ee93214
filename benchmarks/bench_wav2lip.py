"""Frames per second of the Wav2Lip generator forward (batch 1/16/32) and of Wav2LipEngine.render() on a video.

Protocol weights stand in for the official ones (same architecture, same cost). Usage:
    python benchmarks/bench_wav2lip.py [--threads N] [--frames 64] [--no-channels-last]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import best_of, cold_home  # benchmarks/common.py (scripts run from benchmarks/)

from lipdub.engines.base import FrameJob
from lipdub.engines.wav2lip.engine import Wav2LipEngine
from lipdub.engines.wav2lip.protocol import protocol_input, write_protocol_checkpoint
from lipdub.faces.types import Face


def bench_forward(engine: Wav2LipEngine, batch: int, repeats: int) -> tuple[float, float, float]:
    """(full forward fps, its CPU ms per frame, decoder-only fps with cached face features) at `batch`."""
    model = engine.model
    audio = engine._tensor(protocol_input((batch, 1, 80, 16), 1000, "mel"))
    faces = engine._tensor(protocol_input((batch, 6, 96, 96), 1001, "face"))
    with torch.inference_mode():
        model.forward_frames(audio, faces)  # warm-up
        wall, cpu = best_of(lambda: model.forward_frames(audio, faces), repeats)
        feats = [f[:1].expand(batch, *f.shape[1:]) for f in model.encode_face(faces[:1])]
        cached, _ = best_of(lambda: model.decode(model.audio_encoder(audio), feats), repeats)
    return batch / wall, 1000 * cpu / batch, batch / cached


def bench_render(engine: Wav2LipEngine, frames: int, size: tuple[int, int]) -> tuple[float, float]:
    """render() frames/s on distinct 720p frames (as from a video: no cached face features), including the
    crop/resize/paste prep."""
    h, w = size
    rng = np.random.default_rng(0)
    box = (200, 460, 540, 760)
    face = Face(box=np.array([540, 200, 760, 460], dtype=float))
    engine.prepare(rng.standard_normal(16000 * (frames // 25 + 2)).astype(np.float32) * 0.1, 25.0)
    jobs = [FrameJob(index=i, frame=rng.integers(0, 256, (h, w, 3), dtype=np.uint8), face=face, box=box)
            for i in range(frames)]
    engine.render(jobs[: engine.batch_size])  # warm-up
    wall, cpu = best_of(lambda: engine.render(jobs), 1)
    return frames / wall, 1000 * cpu / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="bfloat16: the optional fast path (not bit-exact with the reference)")
    args = parser.parse_args()
    cold_home()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_protocol_checkpoint(Path(tmp) / "wav2lip.pth")
        engine = Wav2LipEngine(ckpt, device="cpu", batch_size=32, threads=args.threads, dtype=args.dtype,
                               channels_last=not args.no_channels_last)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}, "
          f"channels_last={not args.no_channels_last}, load average {os.getloadavg()[0]:.1f}")
    for batch in (1, 16, 32):
        full, cpu_ms, cached = bench_forward(engine, batch, args.repeats)
        print(f"generator forward batch {batch:2d}: {full:6.1f} frames/s, {cpu_ms:5.0f} CPU-ms/frame"
              f"   (face features cached: {cached:6.1f} frames/s)")
    fps, cpu_ms = bench_render(engine, args.frames, (720, 1280))
    print(f"render() 720p, batch 32, {args.frames} distinct frames: {fps:6.1f} frames/s, {cpu_ms:5.0f} "
          "CPU-ms/frame")


if __name__ == "__main__":
    main()
