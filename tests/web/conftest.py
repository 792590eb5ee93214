"""Fixtures for the web tests: the app served by uvicorn on 127.0.0.1 (a fresh data dir, an injected job runner),
an httpx client on it, and the test media."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from lipdub.web import WebSettings, create_app

DATA = Path(__file__).parent / "data"
PHOTO, NO_FACE, SPEECH = DATA / "two_people.jpg", DATA / "no_face.jpg", DATA / "speech_3s.flac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cli_server(tmp_path: Path, args: list[str], ready: str, banner: str, timeout: float) -> Iterator[str]:
    """`python -m lipdub <args> --port P` as a real process (LIPDUB_HOME in tmp_path, no configured checkpoint);
    yields its URL once `ready` (a path under it) answers and it has printed `<banner> <url>`."""
    port = free_port()
    env = dict(os.environ, LIPDUB_HOME=str(tmp_path / "home"), LIPDUB_THREADS="2")
    env.pop("LIPDUB_CHECKPOINT", None)
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "lipdub", *args, "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(url + ready, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        log.seek(0)
        assert f"{banner} {url}" in log.read()
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


class LiveServer:
    """`create_app(settings, runner)` served by uvicorn in a thread on 127.0.0.1 (a real socket, real HTTP)."""

    def __init__(self, settings: WebSettings, runner=None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings, runner=runner), host="127.0.0.1", port=self.port,
                                log_level="warning", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class LiveClient(httpx.Client):
    """An httpx client on a `LiveServer`; leaving it (or `__exit__`) also stops the server."""

    def __init__(self, server: LiveServer) -> None:
        super().__init__(base_url=server.url, timeout=120, follow_redirects=True)
        self.live = server

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.live.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """make_server(runner=None, **settings) -> a started LiveServer (data dir in tmp_path); all stopped after."""
    servers: list[LiveServer] = []

    def make(runner=None, **settings) -> LiveServer:
        settings.setdefault("data_dir", tmp_path / "web")
        settings.setdefault("warm_up", False)
        server = LiveServer(WebSettings(**settings), runner).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def make_client(make_server) -> Iterator[Callable[..., LiveClient]]:
    """make_client(runner=None, **settings) -> an httpx client on a fresh live server."""
    clients: list[LiveClient] = []

    def make(runner=None, **settings) -> LiveClient:
        client = LiveClient(make_server(runner, **settings))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def upload(client: httpx.Client, path: Path, name: str | None = None, **kw) -> dict:
    """Upload `path` and return the created record (asserts 201)."""
    res = client.post("/api/uploads", params={"name": name or path.name}, content=path.read_bytes(), **kw)
    assert res.status_code == 201, res.text
    return res.json()


def wait_job(client: httpx.Client, job_id: str, until: Callable[[dict], bool], timeout: float = 90.0,
             **kw) -> dict:
    """Poll a job until `until(job)`; fail with its last state after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}", **kw).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job never reached the expected state: {job}"
        time.sleep(0.1)


def ended(job: dict) -> bool:
    return job["state"] in ("done", "failed", "cancelled")
