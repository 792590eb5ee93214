"""`lipdub batch`: run the jobs of a JSON-lines file (local processes or Ray), skip those already done, report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lipdub.cli.checks import count


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="run many animate jobs from a JSON-lines file, resumably",
                       description="Run every job of JOBS (one JSON object a line with the REST API's job fields: "
                                   "media, audio or speakers, face_id, engine, mix, output, ...; paths relative to "
                                   "JOBS). Jobs whose output is up to date are skipped; a failed job does not stop "
                                   "the others.")
    p.add_argument("jobs", type=Path, help="jobs file (.jsonl)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (job outputs are relative to it)")
    p.add_argument("-j", "--workers", type=count, help="jobs at once on local processes (default: LIPDUB_THREADS)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the jobs on Ray: 'local' (a private instance), "
                                                      "HOST:PORT of a cluster's head, or 'auto'; needs lipdub[ray] "
                                                      "and paths every node can read")
    p.add_argument("--checkpoint", type=Path, help="Wav2Lip checkpoint for jobs that name none (read from this "
                                                   "path by each worker)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--force", action="store_true", help="run every job again, even those up to date")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lipdub.batch import format_summary, run_batch

    report = run_batch(args.jobs, args.out, workers=args.workers, ray_address=args.ray, checkpoint=args.checkpoint,
                       device=args.device, force=args.force)
    print(json.dumps(report, indent=1) if args.json else format_summary(report))
    return 1 if report["failed"] else 0
