"""`lipdub live PHOTO`: serve a page where the photo talks along with the microphone, and its WebSocket."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from lipdub.cli.checks import number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="a photo that talks along with your microphone, live (page + WebSocket)",
                       description="Serve a page where PHOTO speaks what the microphone hears, in real time on a "
                                   "CPU, and the WebSocket /api/live any program can stream audio to (the protocol "
                                   "is in /api/docs and the README).")
    p.add_argument("photo", type=Path, help="the portrait (any photo with a face)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=number(int, min=0, max=65535), default=8000, help="port (default: 8000)")
    p.add_argument("--motion", choices=["none", "natural", "lively", "idle"], default="natural",
                   help="blinks and head motion while talking and silent (default: natural)")
    p.add_argument("--seed", type=number(int, min=0), default=0, help="the motion's random choices (default: 0)")
    p.add_argument("--token", default=None, help="require this token from every client (also LIPDUB_WEB_TOKEN; "
                   "'random' makes one up and prints it)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser once serving")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from lipdub.errors import LipdubError
    from lipdub.settings import load_settings
    from lipdub.web import WebSettings
    from lipdub.web.live import create_live_app

    if not args.photo.is_file():
        raise LipdubError("not found", args.photo)
    token = secrets.token_urlsafe(16) if args.token == "random" else args.token
    settings = load_settings(WebSettings, host=args.host, **({"token": token} if token else {}))
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.token:
        print("lipdub: warning: serving beyond this machine without --token; anyone who can reach it can use it",
              file=sys.stderr, flush=True)
    print(f"lipdub: finding the face in {args.photo} ...", flush=True)
    app = create_live_app(args.photo, settings, motion=args.motion, seed=args.seed)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/" + (f"#token={settings.token}" if settings.token else "")
    print(f"lipdub: live on {url} (press the microphone button and talk; Ctrl+C stops)", flush=True)
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.5, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=args.host, port=args.port, log_level=os.environ.get("LIPDUB_WEB_LOG", "warning"),
                timeout_graceful_shutdown=5)
    return 0
