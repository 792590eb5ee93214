"""`lipdub serve --ray`: the REST API's jobs run as tasks on a local Ray instance (head on 127.0.0.1): a job
finishes with its result, progress reaches the page, cancel stops it, a worker that dies fails the job with a
reason. The jobs run the quick stand-in runners of web_runners (the web machinery is what is tested here)."""

from __future__ import annotations

import time

import web_runners
from conftest import PHOTO, SPEECH, ended, upload, wait_job


def new_job(client) -> dict:
    media, audio = upload(client, PHOTO), upload(client, SPEECH)
    res = client.post("/api/jobs", json={"media": media["id"], "audio": audio["id"]})
    assert res.status_code == 201, res.text
    return res.json()


def test_a_job_runs_on_ray_and_its_result_downloads(make_client, ray_local):
    client = make_client(runner=web_runners.quick, ray=ray_local)
    job = wait_job(client, new_job(client)["id"], ended, timeout=240)  # a busy machine starts Ray workers slowly
    assert job["state"] == "done", job
    assert job["result"]["notes"] == ["made by the test runner"]  # the runner's result came back from the Ray task
    download = client.get(job["result_url"])
    assert download.status_code == 200 and download.content[4:8] == b"ftyp"


def test_cancel_stops_a_ray_job_and_removes_its_partial_files(make_client, ray_local, tmp_path):
    client = make_client(runner=web_runners.slow, ray=ray_local)
    job = new_job(client)
    running = wait_job(client, job["id"], lambda j: j["stage"] == "generating" and j["percent"] > 26, timeout=240)
    assert running["state"] == "running"  # progress travels from the Ray worker to the API
    job_dir = tmp_path / "web" / "jobs" / job["id"]
    assert (job_dir / "partial.tmp").exists()
    t0 = time.monotonic()
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    assert time.monotonic() - t0 < 10
    assert not any(p.is_file() for p in job_dir.rglob("*"))


def test_a_ray_worker_that_dies_fails_the_job_with_a_reason(make_client, ray_local):
    client = make_client(runner=web_runners.crash, ray=ray_local)
    failed = wait_job(client, new_job(client)["id"], ended, timeout=240)  # two worker start-ups
    assert failed["state"] == "failed" and "Ray worker died" in failed["error"]
    assert client.get("/api/config").status_code == 200
