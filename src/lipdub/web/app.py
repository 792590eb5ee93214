"""`create_app(settings)`: the FastAPI app — the REST API, the static page, the job queue's lifetime."""

from __future__ import annotations

import importlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from lipdub import __version__
from lipdub.web.api import WebContext, describe_error, make_request, router
from lipdub.web.config import WebSettings
from lipdub.web.picker import FacePicker
from lipdub.web.retention import Janitor, sweep
from lipdub.web.sessions import Sessions, load_secret
from lipdub.web.store import Store
from lipdub.web.worker import JobQueue, Runner

STATIC = Path(__file__).parent / "static"


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LoopbackHostOnly:
    """ASGI middleware for a server without a token: 400 unless the Host header names loopback or the served
    address, so a web page cannot reach this server through a DNS-rebinding domain."""

    def __init__(self, app: ASGIApp, allowed: set[str]) -> None:
        self.app, self.allowed = app, {h.lower() for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "")
            try:
                name = urlsplit("//" + host).hostname or ""
            except ValueError:
                name = ""
            if name not in self.allowed:
                await PlainTextResponse(f"unexpected Host header {host[:100]!r}: this server answers only to "
                                        f"{', '.join(sorted(self.allowed))}", status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: WebSettings | None = None, *, runner: Runner | None = None) -> FastAPI:
    """The web app. `runner` replaces `pipeline.animate` (same signature; must be picklable for the workers)."""
    settings = settings or WebSettings()
    if runner is None:
        from lipdub.pipeline import animate as runner
    data_dir = settings.resolved_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "lipdub.sqlite3")
    ctx = WebContext(settings=settings, store=store, queue=None, data_dir=data_dir,  # type: ignore[arg-type]
                     picker=FacePicker(warm=settings.warm_up, size=settings.pickers))
    ctx.queue = JobQueue(store, runner, partial(make_request, ctx), ctx.job_dir, settings.workers,
                         describe_error=partial(describe_error, ctx), ray_address=settings.ray)

    max_bytes = settings.max_storage_gb * 1e9 if settings.max_storage_gb else None
    janitor = Janitor(partial(sweep, store, ctx.job_dir, settings.keep_days, max_bytes), settings.sweep_every)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for stale in ctx.tmp_dir.glob("*.part"):  # uploads cut short by a previous run
            stale.unlink(missing_ok=True)
        ctx.queue.start()
        ctx.picker.start()
        janitor.start()
        # import the pipeline now, in the background, rather than on the first request
        threading.Thread(target=importlib.import_module, args=("lipdub.pipeline",), daemon=True).start()
        try:
            yield
        finally:
            janitor.stop()
            ctx.queue.stop()
            ctx.picker.stop()

    # FastAPIOffline: the docs page serves Swagger UI's files from the fastapi-offline package (no CDN)
    app = FastAPIOffline(title="lipdub", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                         static_url="/docs-static", redoc_url=None, openapi_url="/api/openapi.json",
                         description="Make a face in a photo or video speak. Every /api call needs "
                                     "`Authorization: Bearer <token>` when the server was started with a token.")
    app.state.ctx = ctx
    app.include_router(router)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    if settings.public:
        app.add_middleware(Sessions, secret=load_secret(data_dir / "session.key"),
                           max_age=int(settings.keep_days * 86400))
    elif not settings.token:
        app.add_middleware(LoopbackHostOnly, allowed=LOOPBACK | {settings.host.strip("[]")})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app
