"""`lipdub serve`: run the web app (page + REST API) with uvicorn and print its URL."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from lipdub.cli.checks import count, number, positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the web app: upload, pick the face, watch progress, download",
                       description="Serve the lipdub page and its REST API (docs at /api/docs).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=number(int, min=0, max=65535), default=8000, help="port (default: 8000)")
    p.add_argument("--data-dir", type=Path, default=None, help="uploads, results and the job database "
                   "(default: <LIPDUB_HOME>/web)")
    p.add_argument("--workers", type=count, default=None, help="jobs run at the same time (default: 1)")
    p.add_argument("--max-upload-mb", type=number(above=0), default=None, help="largest upload accepted (default: 512)")
    p.add_argument("--max-duration", type=number(above=0), default=None, help="longest video/audio accepted, seconds "
                   "(default: 600)")
    p.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on every API call "
                   "(also LIPDUB_WEB_TOKEN; 'random' makes one up and prints it)")
    p.add_argument("--cors", action="append", default=None, metavar="ORIGIN",
                   help="allow this browser origin to call the API (repeatable; default: CORS off)")
    p.add_argument("--public", action="store_true", help="public demo: each browser gets its own session and "
                   "sees only its own uploads and jobs, within quotas; --token then gives the admin view of all")
    p.add_argument("--quota-jobs", type=count, default=None, help="public mode: jobs waiting or running per "
                   "visitor (default: 2)")
    p.add_argument("--quota-mb", type=positive, default=None, help="public mode: megabytes of uploads kept per "
                   "visitor (default: 500)")
    p.add_argument("--pickers", type=count, default=None, help="face-picker helper processes, so one long video "
                   "does not hold up other visitors (default: 2)")
    p.add_argument("--keep-days", type=positive, default=None, help="remove finished jobs and uploads older than "
                   "this many days (default: 7)")
    p.add_argument("--max-storage-gb", type=positive, default=None, help="when the data folder grows past this, "
                   "remove the oldest finished jobs and uploads first (default: no cap)")
    p.add_argument("--checkpoint", type=Path, default=None, help="Wav2Lip checkpoint for the neural engine")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda", "mps"],
                   help="device of the wav2lip engine (default: LIPDUB_WEB_DEVICE, else auto, i.e. LIPDUB_DEVICE)")
    p.add_argument("--ray", metavar="ADDRESS", default=None, help="run the jobs on a Ray cluster: 'local' (a private "
                   "instance), HOST:PORT of its head, or 'auto' (also LIPDUB_WEB_RAY); --workers jobs at once; needs "
                   "lipdub[ray] and the data folder on a path every node reads and writes")
    p.add_argument("--open", action="store_true", help="open the page in the default browser once serving")
    p.set_defaults(func=_run)


def settings_from_args(args: argparse.Namespace):
    """`WebSettings` from the environment, overridden by the flags given."""
    from pydantic import ValidationError

    from lipdub.errors import LipdubError
    from lipdub.settings import load_settings
    from lipdub.web import WebSettings

    over = {"data_dir": args.data_dir, "workers": args.workers, "max_duration": args.max_duration,
            "cors_origins": args.cors, "checkpoint": args.checkpoint, "device": args.device, "host": args.host,
            "keep_days": args.keep_days, "max_storage_gb": args.max_storage_gb, "public": args.public or None,
            "quota_jobs": args.quota_jobs, "quota_mb": args.quota_mb, "pickers": args.pickers, "ray": args.ray,
            "token": secrets.token_urlsafe(16) if args.token == "random" else args.token,
            "max_upload_bytes": int(args.max_upload_mb * 1e6) if args.max_upload_mb else None}
    given = {k: v for k, v in over.items() if v is not None}
    try:
        return WebSettings(**given)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        if field in given:  # a flag's value: name the flag
            raise LipdubError(f"--{field.replace('_', '-')}: {first['msg']}") from None
    return load_settings(WebSettings, **given)  # else an environment variable is wrong: load_settings names it


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from lipdub.engines.wav2lip.weights import resolve_checkpoint
    from lipdub.errors import LipdubError
    from lipdub.settings import resolve_device
    from lipdub.web import create_app

    settings = settings_from_args(args)
    resolve_device(settings.device)  # an unavailable device fails now, not in every job
    if args.checkpoint is not None and not resolve_checkpoint(args.checkpoint).is_file():
        raise LipdubError("checkpoint not found", args.checkpoint)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.token and not settings.public:
        print("lipdub: warning: serving beyond this machine without --token; anyone who can reach it can "
              "upload and read results", file=sys.stderr, flush=True)
    app = create_app(settings)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/"
    print(f"lipdub: serving on {url}" + (f"#token={settings.token}" if settings.token else ""), flush=True)
    where = f" on Ray ({settings.ray})" if settings.ray else ""
    print(f"lipdub: data in {settings.resolved_data_dir()}, {settings.workers} worker(s){where}; Ctrl+C stops",
          flush=True)
    if args.open:
        import threading
        import webbrowser

        page = url + (f"#token={settings.token}" if settings.token else "")
        threading.Timer(1.5, webbrowser.open, args=(page,)).start()
    uvicorn.run(app, host=args.host, port=args.port, log_level=os.environ.get("LIPDUB_WEB_LOG", "warning"),
                timeout_graceful_shutdown=5)
    return 0
