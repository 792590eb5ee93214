"""Wav2Lip generator speed and fidelity per arithmetic mode: forward frames/s (batch 1/8/32), render() frames/s on
distinct 720p frames, and the mean abs difference of the rendered mouths against fp32 (uint8 levels, 0 = identical).

Modes: fp32 (the default, exact; channels_last), fp32 without channels_last, bf16 (LIPDUB_PRECISION=bf16),
int8 (LIPDUB_PRECISION=int8: quantized on its first rendered batch, calibrated on that batch's input).
Protocol weights stand in for the official ones (same architecture, same cost); the fidelity frames are the
test suite's real face (tests/data/wav2lip/face.png) driven by its speech. Usage:
    python benchmarks/bench_wav2lip.py [--threads N] [--frames 64] [--modes fp32,fp32-nchw,bf16,int8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from common import best_of, cold_home  # benchmarks/common.py (scripts run from benchmarks/)
from scipy.io import wavfile

from lipdub.engines.base import FrameJob
from lipdub.engines.wav2lip.engine import Wav2LipEngine
from lipdub.engines.wav2lip.protocol import protocol_input, write_protocol_checkpoint
from lipdub.faces.types import Face

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "wav2lip"
BOX = (58, 183, 170, 281)  # the face box of the parity test's frame
MODES = {"fp32": ("float32", True), "fp32-nchw": ("float32", False), "bf16": ("bfloat16", True),
         "int8": ("int8", True)}


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


def mouths(engine: Wav2LipEngine) -> np.ndarray:
    """The rendered mouth patches (uint8) of the real face for its first 32 speech frames."""
    face = np.ascontiguousarray(cv2.imread(str(DATA / "face.png"))[..., ::-1])
    _, pcm = wavfile.read(DATA / "speech_16k.wav")
    n = min(32, engine.prepare(pcm.astype(np.float32) / 32768.0, 25.0))
    top, bottom, left, right = BOX
    box = Face(box=np.array([left, top, right, bottom], float))
    jobs = [FrameJob(index=i, frame=face, face=box, box=BOX) for i in range(n)]
    engine._last_face = None  # encode the face anew, as a fresh run does
    return np.stack([p.image for p in engine.render(jobs)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="fp32,fp32-nchw,bf16,int8", help=f"comma-separated of {', '.join(MODES)}")
    args = parser.parse_args()
    cold_home()  # no cached weights or detections from an earlier run
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a loaded machine: figures are rough; "
          "CPU-ms/frame is the steadier one)")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_protocol_checkpoint(Path(tmp) / "wav2lip.pth")
        for mode in ["fp32"] + [m for m in args.modes.split(",") if m != "fp32"]:
            dtype, channels_last = MODES[mode]
            engine = Wav2LipEngine(ckpt, device="cpu", batch_size=32, threads=args.threads, dtype=dtype,
                                   channels_last=channels_last)
            got = mouths(engine).astype(np.int16)  # int8: quantized (calibrated) on this first batch
            reference = got if reference is None else reference
            diff = np.abs(got - reference)
            print(f"[{mode}] {torch.get_num_threads()} threads; mouths vs fp32: mean abs {diff.mean():.3f}, "
                  f"max {diff.max()} (uint8 levels)")
            for batch in (1, 8, 32):
                full, cpu_ms, cached = bench_forward(engine, batch, args.repeats)
                print(f"  generator forward batch {batch:2d}: {full:6.1f} frames/s, {cpu_ms:5.0f} CPU-ms/frame"
                      f"   (face features cached: {cached:6.1f} frames/s)")
            fps, cpu_ms = bench_render(engine, args.frames, (720, 1280))
            print(f"  render() 720p, {args.frames} distinct frames: {fps:6.1f} frames/s, {cpu_ms:5.0f} CPU-ms/frame")


if __name__ == "__main__":
    main()
