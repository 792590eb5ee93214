"""Data-prep throughput: minutes of source video processed per minute by cut, filter, prepare and the chain.

Goal: the whole chain faster than real time (> 1.0) on 2 cores. Cases: the 20 s 256x256 talking head of
tests/data/prep as is, and a 1280x720 "episode" made from it (the host scaled into the right half of
a studio-like frame, cut with --crop right-half), which is closer to TV material. A fresh LIPDUB_HOME per run,
so `filter` detects faces from scratch and `prepare` reuses them, as in real use.

    python benchmarks/bench_data.py [--workers 2] [--case small|episode|both] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "data" / "prep" / "host_20s.mp4"  # repository files only
PHOTO = ROOT / "tests" / "data" / "prep" / "host.jpg"


def make_episode(folder: Path) -> Path:
    """1280x720 25 fps: the talking head at 512x512 in the right half of a plain set, with its audio."""
    import cv2
    import numpy as np

    from lipdub import media

    out = folder / "episode720.mp4"
    audio = media.load_audio(SOURCE, sr=48000)
    base = np.zeros((720, 1280, 3), np.uint8)
    base[:] = (40, 44, 60)
    cv2.rectangle(base, (60, 120), (560, 600), (90, 80, 70), -1)  # a desk on the empty half
    with media.VideoWriter(out, 25, audio=audio, audio_rate=48000) as w:
        for frame in media.iter_frames(SOURCE, fps=25):
            canvas = base.copy()
            canvas[150:662, 704:1216] = cv2.resize(frame, (512, 512), interpolation=cv2.INTER_LINEAR)
            w.write(canvas)
    return out


def cpu_seconds() -> float:
    """CPU time of this process and its finished workers (user + system)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_case(name: str, source: Path, crop: str | None, workers: int, work: Path) -> None:
    from lipdub.data.cut import CutConfig, cut
    from lipdub.data.filter import FilterConfig, filter_clips
    from lipdub.data.prepare import PrepareConfig, prepare
    from lipdub.media import probe

    minutes = probe(source).duration / 60
    clips, kept, ds = work / f"{name}-clips", work / f"{name}-kept", work / f"{name}-dataset"
    times, cpu = {}, {}
    t, c = time.perf_counter(), cpu_seconds()
    res = cut([source], clips, CutConfig(crop=crop), workers=workers)
    times["cut"], cpu["cut"] = time.perf_counter() - t, cpu_seconds() - c
    t, c = time.perf_counter(), cpu_seconds()
    rep = filter_clips(clips, kept, [PHOTO], FilterConfig(), workers=workers)
    times["filter"], cpu["filter"] = time.perf_counter() - t, cpu_seconds() - c
    t, c = time.perf_counter(), cpu_seconds()
    man = prepare(kept, ds, PrepareConfig(), val_split=0.0, workers=workers)
    times["prepare"], cpu["prepare"] = time.perf_counter() - t, cpu_seconds() - c
    t = time.perf_counter()
    cut([source], clips, CutConfig(crop=crop), workers=workers)
    filter_clips(clips, kept, [PHOTO], FilterConfig(), workers=workers)
    prepare(kept, ds, PrepareConfig(), val_split=0.0, workers=workers)
    rerun = time.perf_counter() - t
    print(f"\n{name}: {source.name} ({minutes:.2f} min), {res['clips']} clips, kept {rep['kept']}, "
          f"dataset {man['clips']} clips / {man['frames']} frames, {workers} workers")
    print(f"  {'step':<8} {'wall':>7}   {'src min/min':>11}   {'CPU s':>6}   {'src min per CPU min':>19}")
    for step, sec in [*times.items(), ("chain", sum(times.values()))]:
        c = cpu[step] if step in cpu else sum(cpu.values())
        print(f"  {step:<8} {sec:7.1f}   {minutes / (sec / 60):11.2f}   {c:6.1f}   {minutes / (c / 60):19.2f}")
    print(f"  (goal: chain > 1 min of source per wall minute on 2 cores; machine load now "
          f"{os.getloadavg()[0]:.1f})")
    print(f"  re-run   {rerun:7.1f} s   (everything skipped by content hash)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--case", choices=["small", "episode", "both"], default="both")
    ap.add_argument("--keep", type=Path, help="keep the outputs in this folder")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="lipdub-bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.case in ("small", "both"):
            os.environ["LIPDUB_HOME"] = str(work / "home-small")  # cold face cache
            run_case("small", SOURCE, None, args.workers, work)
        if args.case in ("episode", "both"):
            t = time.perf_counter()
            episode = make_episode(work)
            print(f"\n(made the 720p episode in {time.perf_counter() - t:.1f} s; not counted)")
            os.environ["LIPDUB_HOME"] = str(work / "home-episode")
            run_case("episode", episode, "right-half", args.workers, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
