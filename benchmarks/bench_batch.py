"""`lipdub batch` throughput: jobs/minute on local processes vs a local Ray instance, and what Ray costs one job.

Every job is a viseme-engine job on a small portrait with ~2 s of speech (the test inputs), so the figures are
dominated by per-job fixed costs (imports in a fresh worker, face detection, encoding), which is what a batch
scheduler changes. A warm-up pass fills the face cache first, so every case runs with it warm.

    python benchmarks/bench_batch.py [--jobs 4] [--workers 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
