"""Fixtures for the web tests: an app on a fresh data dir with an injected job runner, and the test media."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from lipdub.web import WebSettings, create_app

DATA = Path(__file__).parent / "data"
PHOTO, NO_FACE, SPEECH = DATA / "two_people.jpg", DATA / "no_face.jpg", DATA / "speech_3s.flac"


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """make_client(runner=None, **settings) -> a started TestClient (data dir in tmp_path); all closed after."""
    clients: list[TestClient] = []

    def make(runner=None, **settings) -> TestClient:
        settings.setdefault("data_dir", tmp_path / "web")
        settings.setdefault("warm_up", False)
        client = TestClient(create_app(WebSettings(**settings), runner=runner))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def upload(client: TestClient, path: Path, name: str | None = None, **kw) -> dict:
    """Upload `path` and return the created record (asserts 201)."""
    res = client.post("/api/uploads", params={"name": name or path.name}, content=path.read_bytes(), **kw)
    assert res.status_code == 201, res.text
    return res.json()


def wait_job(client: TestClient, job_id: str, until: Callable[[dict], bool], timeout: float = 90.0,
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
