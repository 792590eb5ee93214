"""Soundtrack figures: mixing speed and memory for a 10-minute 48 kHz stereo mix, and the full A/V sync matrix.

    python benchmarks/bench_mix.py            # mix speed + memory
    python benchmarks/bench_mix.py --sync     # also 10 min at 24, 25, 29.97 and 30 fps (about 2 min)
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
from common import cold_home  # benchmarks/common.py (scripts run from benchmarks/)

from lipdub.audio.mix import SpeechTrack, mix_soundtrack, true_peak_limit
from lipdub.audio.vad import speech_segments
from lipdub.media import load_audio

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "mix"
MINUTES = 10


def tiled(x: np.ndarray, n: int) -> np.ndarray:
    return np.tile(x, (1, -(-n // x.shape[-1])))[:, :n]


def timed(label: str, fn, audio_seconds: float):
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{label:<58} {dt:7.2f} s  {audio_seconds / dt:7.0f}x real time  peak alloc {peak / 2**20:6.0f} MiB")
    return result


def bench_mix() -> None:
    seconds = MINUTES * 60
    original = tiled(load_audio(DATA / "obama_48k_stereo.m4a", sr=None, mono=False), seconds * 48000)
    speech = load_audio(DATA / "dialogue_16k.flac", sr=16000, mono=True)
    segments = speech_segments(speech)
    starts = np.arange(0, seconds - 10, 20.0)  # a 9 s line every 20 s: 30 speech tracks
    tracks = [SpeechTrack(speech, 16000, float(s), segments=segments) for s in starts]
    print(f"{MINUTES} min, 48 kHz stereo original, {len(tracks)} speech tracks of 9 s (16 kHz mono)")
    timed("VAD of one 9 s line (silero, model already loaded)", lambda: speech_segments(speech), 9.0)
    timed("replace: speech only, 16 kHz mono out", lambda: mix_soundtrack(tracks, None, duration=seconds), seconds)
    timed("original, no duck, no limiter", lambda: mix_soundtrack(
        tracks, (original, 48000), duration=seconds, limiter=False), seconds)
    out, rate = timed("original + duck 12 dB + true-peak limiter", lambda: mix_soundtrack(
        tracks, (original, 48000), duration=seconds, duck_db=12.0), seconds)
    loud = out * np.float32(4.0)
    timed("true-peak limiter alone on a 12 dB-too-loud mix", lambda: true_peak_limit(loud, rate), seconds)
    print(f"output: {out.shape} float32 = {out.nbytes / 2**20:.0f} MiB (the floor for any whole-track mix)")


def bench_sync() -> None:
    spec = importlib.util.spec_from_file_location("test_av_sync", ROOT / "tests" / "test_av_sync.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    print(f"A/V sync, {MINUTES} min at 32x32: click-flash offset at start/end, audio-video length difference")
    for fps, rate in ((Fraction(24), 48000), (Fraction(25), 48000), (Fraction(30000, 1001), 48000),
                      (Fraction(30), 44100)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sync.mp4"
            t0 = time.perf_counter()
            markers, n = sync.write_marked(path, fps, MINUTES * 60, rate)
            got = sync.read_back(path)
            dt = time.perf_counter() - t0
        off = np.array(got["clicks"]) - np.array(got["flashes"]) - sync.onset_delay()
        print(f"  {float(fps):6.3f} fps {rate} Hz: {n} frames, offset start {off[0] * 1e3:+.2f} ms, "
              f"end {off[-1] * 1e3:+.2f} ms, drift {(off[-1] - off[0]) * 1e3:+.3f} ms, "
              f"A-V length {(got['audio_duration'] - got['video_duration']) * 1e3:+.2f} ms  ({dt:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync", action="store_true", help="also run the 10-minute A/V sync matrix")
    args = parser.parse_args()
    cold_home()
    bench_mix()
    if args.sync:
        bench_sync()
