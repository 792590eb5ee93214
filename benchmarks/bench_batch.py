"""`lipdub batch` throughput: jobs/minute on local processes vs a local Ray instance, and what Ray costs one job;
`animate --split`: wall time of one long 720p video rendered by 1 vs 2 workers.

Every batch job is a viseme-engine job on a small portrait with ~2 s of speech (the test inputs), so the figures
are dominated by per-job fixed costs (imports in a fresh worker, face detection, encoding), which is what a batch
scheduler changes. A warm-up pass fills the face cache first, so every case runs with it warm.
The --split case makes a 1280x720 talking video of --seconds (default 60) from the test clip (played forward
and back) and as much speech from the test recordings; face analysis runs once before the timed runs.

    python benchmarks/bench_batch.py [--jobs 4] [--workers 2] [--no-ray] [--split-seconds 60] [--no-split]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from common import cold_home

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
PORTRAITS = sorted((DATA / "viseme" / "portraits").glob("*.jpg"))
SPEECH = [DATA / "mix" / "flemish_vl09647_22k.flac", DATA / "mix" / "flemish_vl00203_22k.flac"]


def write_jobs(folder: Path, n: int) -> Path:
    jobs = folder / "jobs.jsonl"
    lines = [{"media": str(PORTRAITS[i % len(PORTRAITS)]), "audio": str(SPEECH[i % len(SPEECH)]),
              "engine": "viseme", "output": f"job{i}.mp4"} for i in range(n)]
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return jobs


def timed_run(jobs: Path, out: Path, **kw) -> tuple[float, dict]:
    from lipdub.batch import run_batch

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    rep = run_batch(jobs, out, **kw)
    wall = time.perf_counter() - t0
    assert rep["done"] == len(rep["jobs"]), [j for j in rep["jobs"] if j["status"] != "done"]
    return wall, rep


def long_720p(folder: Path, seconds: float) -> tuple[Path, Path]:
    """A 1280x720 video of the talking test clip (forward, back, ...) and a speech track, both `seconds` long."""
    import cv2
    import numpy as np

    from lipdub import media
    from lipdub.pipeline import pingpong

    clip = list(media.iter_frames(DATA / "pipeline" / "talk_2s.mp4"))
    video, speech = folder / "long720.mp4", folder / "long_speech.flac"
    n = int(seconds * 25)
    with media.VideoWriter(video, 25) as writer:
        for i in range(n):
            canvas = np.zeros((720, 1280, 3), np.uint8)
            canvas[:, 280:1000] = cv2.resize(clip[pingpong(i, len(clip))], (720, 720), interpolation=cv2.INTER_CUBIC)
            writer.write(canvas)
    parts = [media.load_audio(p) for p in (DATA / "viseme" / "dutch_vl04108.flac", DATA / "viseme" / "espeak_en.flac",
                                           DATA / "viseme" / "espeak_nl.flac", *SPEECH)]
    audio = np.concatenate(parts * int(np.ceil(seconds * media.SAMPLE_RATE / sum(map(len, parts)))))
    media.write_audio(speech, audio[: int(seconds * media.SAMPLE_RATE)], media.SAMPLE_RATE)
    return video, speech


def bench_split(tmp: Path, seconds: float, ray_address: str | None) -> None:
    """Wall time of `animate --split 1` and `--split 2` (one worker vs two) on the long 720p video."""
    from lipdub import faces
    from lipdub.pipeline import AnimateRequest
    from lipdub.split import animate_split

    video, speech = long_720p(tmp, seconds)
    faces.analyze(video)  # face analysis once, in the cache, as --split does before its workers start
    where = f"Ray ({ray_address})" if ray_address else "local processes"
    print(f"animate --split on {where}: {seconds:g} s of 1280x720 video at 25 fps, viseme engine, warm face cache")
    walls = {}
    for pieces in (1, 2):
        request = AnimateRequest(media=video, audio=speech, output=tmp / f"split{pieces}.mp4", engine="viseme")
        t0 = time.perf_counter()
        animate_split(request, pieces, ray_address=ray_address)
        walls[pieces] = time.perf_counter() - t0
        print(f"  {pieces} worker{'s' if pieces > 1 else ' '}                {walls[pieces]:7.1f} s")
    print(f"  speed-up                 {walls[1] / walls[2]:7.2f} x  (ideal on 2 free cores: 2 x)")
    if ray_address:
        import ray

        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--split-seconds", type=float, default=60.0)
    ap.add_argument("--no-split", action="store_true")
    ap.add_argument("--no-batch", action="store_true")
    args = ap.parse_args()
    cold_home()
    print("NOTE: wall-clock figures; on a shared, loaded machine they say little (see `uptime`)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        if not args.no_split:
            bench_split(tmp, args.split_seconds, None if args.no_ray else "local")
        if not args.no_batch:
            bench_batch(tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_batch(tmp: Path, args: argparse.Namespace) -> None:
    """jobs/minute inline, on local processes and on a local Ray instance; one short job's Ray overhead."""
    jobs = write_jobs(tmp, args.jobs)
    (tmp / "one").mkdir()
    one = write_jobs(tmp / "one", 1)
    timed_run(jobs, tmp / "warm", workers=1)  # warm-up: face cache, file hashes, imports in this process
    print(f"{args.jobs} viseme jobs (portrait + ~2 s speech), warm face cache")
    wall, _ = timed_run(jobs, tmp / "inline", workers=1)
    print(f"  inline (1 process)       {wall:7.1f} s  {args.jobs * 60 / wall:6.2f} jobs/min")
    wall, _ = timed_run(jobs, tmp / "local", workers=args.workers)
    print(f"  local, {args.workers} processes       {wall:7.1f} s  {args.jobs * 60 / wall:6.2f} jobs/min")
    inline_one, _ = timed_run(one, tmp / "one-inline", workers=1)
    if args.no_ray:
        return
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    start = time.perf_counter() - t0
    try:
        cold, _ = timed_run(one, tmp / "one-ray-cold", ray_address="local", workers=args.workers)
        warm, _ = timed_run(one, tmp / "one-ray-warm", ray_address="local", workers=args.workers)
        wall, _ = timed_run(jobs, tmp / "ray", ray_address="local", workers=args.workers)
    finally:
        ray.shutdown()
    print(f"  Ray local, {args.workers} CPUs        {wall:7.1f} s  {args.jobs * 60 / wall:6.2f} jobs/min "
          f"(+ {start:.1f} s ray.init)")
    print("one short job:")
    print(f"  inline                   {inline_one:7.1f} s")
    print(f"  Ray, fresh worker        {cold:7.1f} s  (overhead {cold - inline_one:+.1f} s: new worker, imports)")
    print(f"  Ray, warm worker         {warm:7.1f} s  (overhead {warm - inline_one:+.1f} s)")
    print(f"  ray.init (local head)    {start:7.1f} s")


if __name__ == "__main__":
    main()
