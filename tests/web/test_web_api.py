"""REST API: uploads (content checks, limits, safe names), jobs (queue, SSE, cancel, range download, delete),
token and CORS. Jobs run an injected stand-in runner so these tests exercise the web machinery only."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import web_runners
from conftest import NO_FACE, PHOTO, SPEECH, LiveClient, ended, upload, wait_job


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


# ---- uploads
def test_upload_picture_is_stored_under_a_generated_name(make_client, tmp_path):
    client = make_client()
    up = upload(client, PHOTO, name="../../evil/../x.jpg")
    assert (up["kind"], up["width"], up["height"]) == ("image", 480, 282)
    assert up["name"] == "x.jpg"  # display only
    stored = [p for p in files_under(tmp_path / "web" / "uploads") if not p.name.endswith(".frame.jpg")]
    assert [p.name for p in stored] == [f"{up['id']}.jpg"]
    assert stored[0].read_bytes() == PHOTO.read_bytes()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "x.jpg").exists()
    frame = client.get(up["frame_url"])
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    assert frame.content[:3] == b"\xff\xd8\xff"
    assert client.get(f"/api/uploads/{up['id']}").json() == up


def test_upload_audio_reports_duration_and_has_no_frame(make_client):
    client = make_client()
    up = upload(client, SPEECH)
    assert up["kind"] == "audio" and up["duration"] == pytest.approx(3.0, abs=0.05)
    assert up["frame_url"] is None
    assert client.get(f"/api/uploads/{up['id']}/frame.jpg").status_code == 422


def test_upload_video_gives_its_first_frame_and_obeys_the_duration_limit(make_client, tmp_path):
    clip = tmp_path / "clip.mp4"
    web_runners.write_video(clip, frames=20, fps=10)
    client = make_client(max_duration=2.5)
    up = upload(client, clip, name="clip.mov")
    assert (up["kind"], up["width"], up["height"]) == ("video", 64, 48)
    assert up["duration"] == pytest.approx(2.0, abs=0.1) and up["has_audio"] is False
    assert client.get(up["frame_url"]).content[:3] == b"\xff\xd8\xff"
    web_runners.write_video(clip, frames=30, fps=10)
    res = client.post("/api/uploads", params={"name": "long.mp4"}, content=clip.read_bytes())
    assert res.status_code == 422
    assert res.json()["detail"] == "long.mp4: is 3.0 s long; this server accepts at most 2.5 s"


def test_upload_checks_content_not_extension(make_client, tmp_path):
    client = make_client()
    res = client.post("/api/uploads", params={"name": "holiday.jpg"}, content=b"this is not a picture\n" * 50)
    assert res.status_code == 422
    assert "holiday.jpg" in res.json()["detail"]
    # a real JPEG named .mp3 is still a picture
    assert upload(client, PHOTO, name="song.mp3")["kind"] == "image"
    assert len([p for p in files_under(tmp_path / "web") if p.suffix == ".part"]) == 0


def test_upload_limits_size_while_streaming(make_client, tmp_path):
    client = make_client(max_upload_bytes=10_000)
    # declared too big: refused before reading
    res = client.post("/api/uploads", params={"name": "big.jpg"}, content=PHOTO.read_bytes())
    assert res.status_code == 413 and "limit" in res.json()["detail"]
    # no Content-Length (chunked): refused while streaming, partial file removed

    def chunks():
        data = PHOTO.read_bytes()
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]

    res = client.post("/api/uploads", params={"name": "big.jpg"}, content=chunks())
    assert res.status_code == 413 and "big.jpg" in res.json()["detail"]
    assert files_under(tmp_path / "web" / "uploads") == [] and files_under(tmp_path / "web" / "tmp") == []


def test_upload_limits_duration_and_refuses_empty(make_client):
    client = make_client(max_duration=2.0)
    res = client.post("/api/uploads", params={"name": "speech.flac"}, content=SPEECH.read_bytes())
    assert res.status_code == 422 and "at most 2 s" in res.json()["detail"]
    assert client.post("/api/uploads", params={"name": "e.wav"}, content=b"").status_code == 422


def test_delete_upload_removes_its_files(make_client, tmp_path):
    client = make_client()
    up = upload(client, PHOTO)
    assert client.delete(f"/api/uploads/{up['id']}").status_code == 204
    assert files_under(tmp_path / "web" / "uploads") == []
    assert client.get(f"/api/uploads/{up['id']}").status_code == 404


# ---- jobs
def new_job(client, runner_media=PHOTO, **body) -> dict:
    media, audio = upload(client, runner_media), upload(client, SPEECH)
    res = client.post("/api/jobs", json={"media": media["id"], "audio": audio["id"], **body})
    assert res.status_code == 201, res.text
    return res.json()


def test_job_runs_and_result_supports_range_requests(make_client, tmp_path):
    client = make_client(runner=web_runners.quick)
    job = new_job(client, face_id=7, paste="box")
    assert job["state"] in ("queued", "running") and job["params"]["engine"] == "viseme"
    done = wait_job(client, job["id"], ended)
    assert done["state"] == "done" and done["percent"] == 100 and done["result"]["notes"]
    assert "output" not in done["result"]  # no server paths in answers
    # what the pipeline was asked to do
    sent = json.loads((tmp_path / "web" / "jobs" / job["id"] / "request.json").read_text())
    assert sent["face"]["face_id"] == 7 and sent["paste"] == "box" and sent["mix"] == "replace"
    assert sent["engine"] == "viseme" and sent["output"].endswith("result.mp4")
    full = client.get(done["result_url"])
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(done["result_url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(full.content)}"
    download = client.get(done["result_url"], params={"download": "true"})
    assert download.headers["content-disposition"].startswith("attachment")
    result = tmp_path / "web" / "jobs" / job["id"] / "result.mp4"
    with av.open(str(result)) as c:
        assert c.streams.video[0].frames == 10


def test_job_options_reach_the_pipeline(make_client, tmp_path):
    client = make_client(runner=web_runners.quick)
    media, a1, a2 = upload(client, PHOTO), upload(client, SPEECH), upload(client, SPEECH)
    body = {"media": media["id"], "speakers": [{"audio": a1["id"], "face_id": 0},
                                                {"audio": a2["id"], "face_id": 1, "start": 1.5}]}
    job = client.post("/api/jobs", json=body).json()
    assert wait_job(client, job["id"], ended)["state"] == "done"
    sent = json.loads((tmp_path / "web" / "jobs" / job["id"] / "request.json").read_text())
    assert [(s["face"]["face_id"], s["start"]) for s in sent["speakers"]] == [(0, 0.0), (1, 1.5)]
    assert sent["speakers"][1]["audio"].endswith(".flac") and sent["audio"] is None


@pytest.mark.parametrize("body, status, words", [
    ({"media": "AUDIO", "audio": "AUDIO"}, 422, "audio file"),
    ({"media": "PHOTO", "audio": "PHOTO"}, 422, "no audio"),
    ({"media": "PHOTO"}, 422, "no audio"),
    ({"media": "nope", "audio": "AUDIO"}, 404, "unknown upload"),
    ({"media": "PHOTO", "audio": "AUDIO", "engine": "wav2lip"}, 422, "checkpoint"),
    ({"media": "PHOTO", "audio": "AUDIO", "keep_original_audio": True}, 422, "no original audio"),
    ({"media": "PHOTO", "audio": "AUDIO", "paste": "glue"}, 422, "paste"),
    ({"media": "PHOTO", "audio": "AUDIO", "duck_db": -5}, 422, "duck_db"),
])
def test_job_bad_input_is_refused_with_a_reason(make_client, body, status, words):
    client = make_client(runner=web_runners.quick)
    ids = {"PHOTO": upload(client, PHOTO)["id"], "AUDIO": upload(client, SPEECH)["id"]}
    body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    res = client.post("/api/jobs", json=body)
    assert res.status_code == status
    assert words in json.dumps(res.json())
    assert client.get("/api/jobs").json() == []


def test_engine_is_neural_only_with_a_checkpoint(make_client, tmp_path):
    plain = make_client(runner=web_runners.quick)
    assert plain.get("/api/config").json()["engines"] == ["viseme"]
    ckpt = tmp_path / "wav2lip.pth"
    ckpt.write_bytes(b"weights")
    client = make_client(runner=web_runners.quick, checkpoint=ckpt, data_dir=tmp_path / "neural")
    config = client.get("/api/config").json()
    assert config["engines"] == ["viseme", "wav2lip"] and config["default_engine"] == "wav2lip"
    job = new_job(client)  # engine "auto"
    assert job["params"]["engine"] == "wav2lip"
    wait_job(client, job["id"], ended)
    sent = json.loads((tmp_path / "neural" / "jobs" / job["id"] / "request.json").read_text())
    assert sent["engine"] == "wav2lip" and sent["checkpoint"] == str(ckpt)
    assert new_job(client, engine="viseme")["params"]["engine"] == "viseme"


def test_unknown_ids_are_404(make_client):
    client = make_client(runner=web_runners.quick)
    for method, url in [("GET", "/api/uploads/x"), ("GET", "/api/uploads/x/faces"), ("GET", "/api/uploads/x/frame.jpg"),
                        ("DELETE", "/api/uploads/x"), ("GET", "/api/jobs/x"), ("GET", "/api/jobs/x/events"),
                        ("POST", "/api/jobs/x/cancel"), ("GET", "/api/jobs/x/result"), ("DELETE", "/api/jobs/x")]:
        res = client.request(method, url)
        assert res.status_code == 404, (method, url)
        assert "unknown" in res.json()["detail"]


def test_events_stream_progress_until_the_end(make_client):
    client = make_client(runner=web_runners.quick)
    job = new_job(client)
    events = []
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        for line in res.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["state"] == "done" and events[-1]["result_url"]
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents)


def test_cancel_stops_the_process_and_removes_partial_files(make_client, tmp_path, monkeypatch):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "20")
    client = make_client(runner=web_runners.slow)
    job = new_job(client)
    running = wait_job(client, job["id"], lambda j: j["stage"] == "generating" and j["percent"] > 42)
    assert running["state"] == "running" and 5 < running["eta"] < 25  # ~16 s left of 20
    job_dir = tmp_path / "web" / "jobs" / job["id"]
    assert (job_dir / "partial.tmp").exists()
    t0 = time.monotonic()
    res = client.post(f"/api/jobs/{job['id']}/cancel")
    assert res.status_code == 200 and res.json()["state"] == "cancelled"
    assert time.monotonic() - t0 < 10
    assert files_under(job_dir) == []
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
    assert client.get(f"/api/jobs/{job['id']}/result").status_code == 409


def test_cancel_a_queued_job(make_client):
    client = make_client(runner=web_runners.slow)
    first, second = new_job(client), new_job(client)
    wait_job(client, first["id"], lambda j: j["state"] == "running")
    assert client.get(f"/api/jobs/{second['id']}").json()["state"] == "queued"
    assert client.post(f"/api/jobs/{second['id']}/cancel").json()["state"] == "cancelled"
    assert client.post(f"/api/jobs/{first['id']}/cancel").json()["state"] == "cancelled"


def test_failed_job_explains_with_the_users_file_name(make_client):
    client = make_client(runner=web_runners.no_face)
    job = new_job(client, NO_FACE)
    failed = wait_job(client, job["id"], ended)
    assert failed["state"] == "failed"
    assert failed["error"] == "no_face.jpg: no face found in the first frame"


def test_crashed_job_process_fails_the_job_not_the_server(make_client):
    client = make_client(runner=web_runners.crash)
    failed = wait_job(client, new_job(client)["id"], ended)
    assert failed["state"] == "failed" and "process died (exit code 3)" in failed["error"]
    assert client.get("/api/config").status_code == 200


def test_two_workers_run_two_jobs_at_once_sharing_the_cpu_budget(make_client, monkeypatch, tmp_path):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "60")
    from lipdub.settings import get_settings

    budget = get_settings().threads
    assert budget >= 2  # tests/conftest.py sets LIPDUB_THREADS=2
    client = make_client(runner=web_runners.slow, workers=2)
    a, b = new_job(client), new_job(client)
    for job in (a, b):
        wait_job(client, job["id"], lambda j: j["state"] == "running" and j["percent"] > 30)
        sent = json.loads((tmp_path / "web" / "jobs" / job["id"] / "request.json").read_text())
        assert sent["threads"] == budget // 2
    for job in (a, b):
        assert client.post(f"/api/jobs/{job['id']}/cancel").json()["state"] == "cancelled"


def test_delete_job_removes_record_and_files(make_client, tmp_path):
    client = make_client(runner=web_runners.quick)
    job = new_job(client)
    wait_job(client, job["id"], ended)
    assert (tmp_path / "web" / "jobs" / job["id"] / "result.mp4").is_file()
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert not (tmp_path / "web" / "jobs" / job["id"]).exists()
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert client.get("/api/jobs").json() == []


def test_restart_keeps_history_fails_interrupted_and_runs_queued(make_client, tmp_path):
    from lipdub.web.store import Job, Store

    first = make_client(runner=web_runners.quick)
    done = wait_job(first, new_job(first)["id"], ended)
    first.__exit__(None, None, None)
    # what a server killed mid-job leaves behind: one job running, one queued
    store = Store(tmp_path / "web" / "lipdub.sqlite3")
    for job_id, state in (("interrupted", "queued"), ("waiting", "queued")):
        store.add_job(Job(id=job_id, state=state, params=done["params"]))
    assert store.claim_next().id == "interrupted"
    store.close()
    (tmp_path / "web" / "tmp" / "cut-short.part").write_bytes(b"half an upload")
    second = make_client(runner=web_runners.quick)
    assert not (tmp_path / "web" / "tmp" / "cut-short.part").exists()
    interrupted = second.get("/api/jobs/interrupted").json()
    assert interrupted["state"] == "failed" and "server stopped" in interrupted["error"]
    assert wait_job(second, "waiting", ended)["state"] == "done"
    history = {j["id"]: j["state"] for j in second.get("/api/jobs").json()}
    assert history == {done["id"]: "done", "interrupted": "failed", "waiting": "done"}
    assert second.get(done["result_url"]).status_code == 200


def test_stopping_the_server_requeues_the_running_job(make_client, monkeypatch):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "60")
    first = make_client(runner=web_runners.slow)
    job = new_job(first)
    wait_job(first, job["id"], lambda j: j["state"] == "running")
    first.__exit__(None, None, None)
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "0.5")
    second = make_client(runner=web_runners.slow)
    assert wait_job(second, job["id"], ended)["state"] == "done"


# ---- safety
def api_operations(client, **kw) -> list[tuple[str, str]]:
    """Every operation the OpenAPI document lists, with ids filled in."""
    paths = client.get("/api/openapi.json", **kw).json()["paths"]
    return [(method.upper(), path.replace("{upload_id}", "x").replace("{job_id}", "x"))
            for path, ops in paths.items() for method in ops]


def test_token_is_required_on_every_api_call(make_client):
    client = make_client(runner=web_runners.quick, token="s3cret")
    routes = api_operations(client)
    assert len(routes) >= 13
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            res = client.request(method, path, headers=headers)
            assert res.status_code == 401, (method, path, headers)
    ok = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/config", headers=ok).json()["auth"] is True
    up = upload(client, PHOTO, headers=ok)
    assert client.get(up["frame_url"], params={"token": "s3cret"}).status_code == 200  # <img>/<video>/SSE
    assert client.get("/api/jobs/x/events", params={"token": "s3cret"}).status_code == 404  # EventSource
    assert client.get("/").status_code == 200  # the page itself holds no data


def test_cors_is_off_by_default_and_opt_in(make_client, tmp_path):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    client = make_client()
    res = client.options("/api/jobs", headers=preflight)
    assert "access-control-allow-origin" not in res.headers
    assert "access-control-allow-origin" not in client.get("/api/config", headers=preflight).headers
    other = make_client(cors_origins=["https://app.example"], data_dir=tmp_path / "other")
    res = other.get("/api/config", headers={"Origin": "https://app.example"})
    assert res.headers["access-control-allow-origin"] == "https://app.example"


def test_no_directory_listing(make_client):
    client = make_client()
    upload(client, PHOTO)
    for path in ("/static/", "/static", "/api/uploads", "/api/uploads/", "/uploads/", "/api/"):
        res = client.get(path)
        assert res.status_code in (404, 405), path
        assert "two_people" not in res.text and ".jpg" not in res.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../web/store.py").status_code == 404


def test_openapi_documents_the_api(make_client):
    spec = make_client().get("/api/openapi.json").json()
    assert {"/api/uploads", "/api/uploads/{upload_id}/faces", "/api/jobs", "/api/jobs/{job_id}/events",
            "/api/jobs/{job_id}/cancel", "/api/jobs/{job_id}/result", "/api/jobs/{job_id}"} <= set(spec["paths"])
    assert "application/octet-stream" in spec["paths"]["/api/uploads"]["post"]["requestBody"]["content"]


# ---- faces (real detector) and one job through the real pipeline
def test_faces_are_numbered_left_to_right_with_thumbnails_and_cached(make_client, lipdub_home):
    client = make_client()
    first = upload(client, PHOTO)
    res = client.get(f"/api/uploads/{first['id']}/faces")
    assert res.status_code == 200, res.text
    found = res.json()
    assert (found["width"], found["height"]) == (480, 282)
    faces = found["faces"]
    assert [f["number"] for f in faces] == [1, 2]
    centres = [(f["box"][0] + f["box"][2]) / 2 for f in faces]
    assert centres[0] < 240 < centres[1]  # Obama left, Biden right in this photo
    for f in faces:
        x1, y1, x2, y2 = f["box"]
        assert 0 <= x1 < x2 <= 480 and 0 <= y1 < y2 <= 282 and (x2 - x1) > 30
        assert f["thumbnail"].startswith("data:image/jpeg;base64,")
    assert len({f["id"] for f in faces}) == 2
    entries = list((lipdub_home / "cache" / "faces").glob("*.npz"))
    assert len(entries) == 1
    stamp = entries[0].stat().st_mtime_ns
    # the same content uploaded again: served from the detection cache, not detected again
    again = client.get(f"/api/uploads/{upload(client, PHOTO)['id']}/faces").json()
    assert [f["box"] for f in again["faces"]] == [f["box"] for f in faces]
    assert list((lipdub_home / "cache" / "faces").glob("*.npz")) == entries
    assert entries[0].stat().st_mtime_ns == stamp


def test_faces_of_a_faceless_picture_and_of_audio(make_client):
    client = make_client()
    assert client.get(f"/api/uploads/{upload(client, NO_FACE)['id']}/faces").json()["faces"] == []
    res = client.get(f"/api/uploads/{upload(client, SPEECH)['id']}/faces")
    assert res.status_code == 422 and "audio" in res.json()["detail"]


def test_real_pipeline_makes_the_second_face_speak(make_client, lipdub_home, tmp_path):
    client = make_client()  # the real pipeline.animate, viseme engine (no weights configured)
    media, audio = upload(client, PHOTO), upload(client, SPEECH)
    second = client.get(f"/api/uploads/{media['id']}/faces").json()["faces"][1]
    job = client.post("/api/jobs", json={"media": media["id"], "audio": audio["id"], "face_id": second["id"]})
    assert job.status_code == 201 and job.json()["params"]["engine"] == "viseme"
    done = wait_job(client, job.json()["id"], ended, timeout=240)
    assert done["state"] == "done", done["error"]
    assert done["result"]["duration"] == pytest.approx(3.0, abs=0.1)
    assert done["result"]["speakers"][0]["face"] == second["id"]
    out = tmp_path / "dl.mp4"
    out.write_bytes(client.get(done["result_url"]).content)
    from lipdub.media import probe

    info = probe(out)
    assert info.kind == "video" and info.has_audio and (info.width, info.height) == (480, 282)
    assert info.duration == pytest.approx(3.0, abs=0.1)


# ---- bounded work, tokens in URLs, Host names, things in use (issue 15)
def test_where_speech_ends_is_bounded_by_max_duration_naming_the_field(make_client):
    client = make_client(runner=web_runners.quick, max_duration=5.0)
    media, audio = upload(client, PHOTO), upload(client, SPEECH)  # 3.0 s of speech
    for start, field in [(2.5, "speakers[0].start"), (1e12, "start")]:
        body = {"media": media["id"], "speakers": [{"audio": audio["id"], "start": start}]}
        res = client.post("/api/jobs", json=body)
        assert res.status_code == 422 and field in json.dumps(res.json()), res.text
    res = client.post("/api/jobs", json={"media": media["id"], "audio": audio["id"], "face_id": -1})
    assert res.status_code == 422 and "face_id" in json.dumps(res.json())
    assert client.get("/api/jobs").json() == []
    ok = client.post("/api/jobs", json={"media": media["id"], "speakers": [{"audio": audio["id"], "start": 1.9}]})
    assert ok.status_code == 201, ok.text


def test_query_token_is_accepted_only_where_a_media_element_or_eventsource_loads(make_client):
    client = make_client(runner=web_runners.quick, token="s3cret")
    allowed = {("GET", "/api/jobs/x/result"), ("GET", "/api/jobs/x/events"), ("GET", "/api/uploads/x/frame.jpg"),
               ("GET", "/api/uploads/x/file")}
    for method, path in api_operations(client, headers={"Authorization": "Bearer s3cret"}):
        res = client.request(method, path, params={"token": "s3cret"})
        if (method, path) in allowed:
            assert res.status_code == 404, (method, path)  # past the token check: the id is unknown
        else:
            assert res.status_code == 401, (method, path)
    up = upload(client, PHOTO, headers={"Authorization": "Bearer s3cret"})
    assert client.get(up["frame_url"], params={"token": "s3cret"}).status_code == 200


def test_without_a_token_only_loopback_host_names_are_answered(make_client, tmp_path):
    client = make_client()
    for host in ("evil.example", "rebind.attacker.test:8000", "192.168.1.5"):
        res = client.get("/api/config", headers={"Host": host})
        assert res.status_code == 400 and "Host" in res.text, host
        assert client.get("/", headers={"Host": host}).status_code == 400
    for host in ("127.0.0.1", f"127.0.0.1:{client.live.port}", "localhost:1234", "[::1]:80"):
        assert client.get("/api/config", headers={"Host": host}).status_code == 200, host
    named = make_client(host="studio.lan", data_dir=tmp_path / "named")
    assert named.get("/api/config", headers={"Host": "studio.lan:8000"}).status_code == 200
    guarded = make_client(token="s3cret", data_dir=tmp_path / "guarded")  # the token is the guard here
    res = guarded.get("/api/config", headers={"Host": "demo.example.org", "Authorization": "Bearer s3cret"})
    assert res.status_code == 200


def test_an_old_sqlite_is_refused_at_start_with_one_clear_line(monkeypatch, tmp_path):
    import sqlite3

    from lipdub.errors import LipdubError
    from lipdub.web import WebSettings, create_app

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    with pytest.raises(LipdubError, match=r"needs SQLite 3\.35\.0 or newer .* uses 3\.31\.1"):
        create_app(WebSettings(data_dir=tmp_path, warm_up=False))


def test_an_upload_a_waiting_or_running_job_uses_cannot_be_deleted(make_client, monkeypatch):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "60")
    client = make_client(runner=web_runners.slow)
    media, a1, a2 = upload(client, PHOTO), upload(client, SPEECH), upload(client, SPEECH)
    running = client.post("/api/jobs", json={"media": media["id"], "audio": a1["id"]}).json()
    queued = client.post("/api/jobs", json={"media": media["id"], "speakers": [{"audio": a2["id"], "face_id": 1}]})
    wait_job(client, running["id"], lambda j: j["state"] == "running")
    for up in (media, a1, a2):
        res = client.delete(f"/api/uploads/{up['id']}")
        assert res.status_code == 409 and up["name"] in res.json()["detail"]
    client.post(f"/api/jobs/{queued.json()['id']}/cancel")
    assert client.delete(f"/api/uploads/{a2['id']}").status_code == 204
    client.post(f"/api/jobs/{running['id']}/cancel")
    assert client.delete(f"/api/uploads/{media['id']}").status_code == 204


def test_the_picker_lists_faces_that_walk_in_later_with_their_time_span(make_client, tmp_path):
    """1 s of an empty room, then the two people: both can be picked, each with a thumbnail and a span."""
    from PIL import Image

    clip = tmp_path / "walk_in.mp4"
    room = np.asarray(Image.open(NO_FACE).convert("RGB").resize((480, 282)))
    people = np.asarray(Image.open(PHOTO).convert("RGB"))
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 480, 282, "yuv420p"
        for img in [room] * 10 + [people] * 10:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    client = make_client(runner=web_runners.quick)
    video = upload(client, clip)
    faces = client.get(f"/api/uploads/{video['id']}/faces").json()["faces"]
    assert len(faces) == 2
    for f in faces:
        assert f["box"] is None  # not in the first frame ...
        assert f["start"] == pytest.approx(1.0, abs=0.15) and f["end"] == pytest.approx(2.0, abs=0.15)
        thumb = Image.open(io.BytesIO(base64.b64decode(f["thumbnail"].split(",", 1)[1])))
        assert min(thumb.size) > 40  # ... yet shown, from a frame where it is
    audio = upload(client, SPEECH)
    job = client.post("/api/jobs", json={"media": video["id"], "audio": audio["id"], "face_id": faces[1]["id"]})
    assert job.status_code == 201
    assert wait_job(client, job.json()["id"], ended)["state"] == "done"


def test_retention_removes_old_finished_things_but_never_a_running_jobs_files(make_client, monkeypatch, tmp_path):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "60")
    client = make_client(runner=web_runners.slow, keep_days=3 / 86400, sweep_every=0.3)  # 3 s
    old = new_job(client)
    client.post(f"/api/jobs/{old['id']}/cancel")
    running = new_job(client)
    wait_job(client, running["id"], lambda j: j["stage"] == "generating")  # its partial file is written
    time.sleep(4.5)
    assert client.get(f"/api/jobs/{old['id']}").status_code == 404
    assert client.get(f"/api/uploads/{old['params']['media']}").status_code == 404
    assert client.get(f"/api/jobs/{running['id']}").json()["state"] == "running"
    for up in (running["params"]["media"], running["params"]["speakers"][0]["audio"]):
        assert client.get(f"/api/uploads/{up}").status_code == 200
    assert (tmp_path / "web" / "jobs" / running["id"] / "partial.tmp").is_file()
    client.post(f"/api/jobs/{running['id']}/cancel")


def test_storage_cap_removes_the_oldest_finished_first(make_client, tmp_path):
    client = make_client(runner=web_runners.quick, max_storage_gb=250e3 / 1e9, sweep_every=0.3)  # 250 kB
    jobs = []
    for _ in range(3):  # each: a 30 kB photo, 59 kB of speech and a small result
        jobs.append(new_job(client))
        wait_job(client, jobs[-1]["id"], ended)
    time.sleep(1.5)
    left = {j["id"] for j in client.get("/api/jobs").json()}
    assert jobs[-1]["id"] in left and jobs[0]["id"] not in left
    assert client.get(f"/api/uploads/{jobs[0]['params']['media']}").status_code == 404
    total = sum(p.stat().st_size for d in ("uploads", "jobs") for p in (tmp_path / "web" / d).rglob("*")
                if p.is_file())
    assert total <= 250e3


# ---- public mode: visitors do not see each other
def test_public_visitors_see_only_their_own_and_the_admin_sees_all(make_server):
    live = make_server(runner=web_runners.quick, public=True, token="admin")
    alice, bob = LiveClient(live), LiveClient(live)  # two browsers: two cookie jars
    media, audio = upload(alice, PHOTO), upload(alice, SPEECH)
    cookie = alice.get("/api/config").headers.get("set-cookie")
    assert cookie is None  # the session was set once, on the first answer, and is kept
    job = alice.post("/api/jobs", json={"media": media["id"], "audio": audio["id"]}).json()
    done = wait_job(alice, job["id"], ended)
    assert done["state"] == "done" and alice.get(done["result_url"]).status_code == 200
    assert [j["id"] for j in alice.get("/api/jobs").json()] == [job["id"]]
    assert bob.get("/api/jobs").json() == []
    for method, url in [("GET", f"/api/jobs/{job['id']}"), ("GET", done["result_url"]),
                        ("GET", f"/api/jobs/{job['id']}/events"), ("POST", f"/api/jobs/{job['id']}/cancel"),
                        ("DELETE", f"/api/jobs/{job['id']}"), ("GET", f"/api/uploads/{media['id']}"),
                        ("GET", media["frame_url"]), ("GET", f"/api/uploads/{media['id']}/file"),
                        ("GET", f"/api/uploads/{media['id']}/faces"), ("DELETE", f"/api/uploads/{audio['id']}")]:
        assert bob.request(method, url).status_code == 404, (method, url)
    res = bob.post("/api/jobs", json={"media": media["id"], "audio": audio["id"]})
    assert res.status_code == 404  # nor use them
    forged = LiveClient(live)
    forged.cookies.set("lipdub_session", alice.cookies["lipdub_session"].split(".")[0] + ".forged")
    assert forged.get("/api/jobs").json() == []  # a session id without its signature is a new visitor
    admin = {"Authorization": "Bearer admin"}
    assert [j["id"] for j in bob.get("/api/jobs", headers=admin).json()] == [job["id"]]
    assert bob.get(done["result_url"], headers=admin).status_code == 200
    assert bob.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    for client in (alice, bob, forged):
        client.close()


def test_public_session_cookie_is_httponly_strict_and_signed(make_server):
    live = make_server(public=True)
    res = httpx.get(live.url + "/")
    cookie = res.headers["set-cookie"]
    assert cookie.startswith("lipdub_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    sid, mac = cookie.split(";")[0].split("=", 1)[1].split(".")
    assert len(sid) >= 24 and len(mac) >= 40  # unguessable id, HMAC-SHA256 signature


def test_public_quotas_per_visitor(make_server, monkeypatch):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "60")
    live = make_server(runner=web_runners.slow, public=True, quota_jobs=1, quota_mb=0.1)  # 100 kB each
    alice, bob = LiveClient(live), LiveClient(live)
    media, audio = upload(alice, PHOTO), upload(alice, SPEECH)  # 30 + 59 kB
    res = alice.post("/api/uploads", params={"name": "more.flac"}, content=SPEECH.read_bytes())
    assert res.status_code == 413 and "what is left of your 100000 bytes" in res.json()["detail"]
    first = alice.post("/api/jobs", json={"media": media["id"], "audio": audio["id"]})
    assert first.status_code == 201
    second = alice.post("/api/jobs", json={"media": media["id"], "audio": audio["id"]})
    assert second.status_code == 429 and "1 job(s) waiting or running" in second.json()["detail"]
    mine = bob.post("/api/jobs", json={"media": upload(bob, PHOTO)["id"], "audio": upload(bob, SPEECH)["id"]})
    assert mine.status_code == 201  # one visitor's quota is not another's
    for client, job in ((alice, first), (bob, mine)):
        client.post(f"/api/jobs/{job.json()['id']}/cancel")
        client.close()


# ---- what the CLI can do, the API can ask for; the queue says where a job is
def test_silence_and_motion_reach_the_pipeline(make_client, tmp_path):
    client = make_client(runner=web_runners.quick)
    job = new_job(client, silence="rest")
    wait_job(client, job["id"], ended)
    sent = json.loads((tmp_path / "web" / "jobs" / job["id"] / "request.json").read_text())
    assert sent["silence"] == "rest"
    assert client.get("/api/config").json()["motion"] is True
    res = client.post("/api/jobs", json={**job["params"] | {"speakers": []}, "motion": "lively", "seed": 7})
    assert res.status_code == 201
    wait_job(client, res.json()["id"], ended)
    sent = json.loads((tmp_path / "web" / "jobs" / res.json()["id"] / "request.json").read_text())
    assert (sent["motion"], sent["seed"]) == ("lively", 7)


def test_english_speech_reaches_the_pipeline_and_other_languages_are_refused(make_client, tmp_path):
    client = make_client(runner=web_runners.quick)
    job = new_job(client, lang="en")
    wait_job(client, job["id"], ended)
    assert json.loads((tmp_path / "web" / "jobs" / job["id"] / "request.json").read_text())["lang"] == "en"
    res = client.post("/api/jobs", json={**job["params"] | {"speakers": []}, "lang": "nl"})
    assert res.status_code == 422 and "lang" in res.text


def test_queued_jobs_know_their_place_and_get_an_eta_once_one_job_ran(make_client, monkeypatch):
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "1")
    client = make_client(runner=web_runners.slow)
    first = new_job(client)
    wait_job(client, first["id"], ended)
    monkeypatch.setenv("WEB_TEST_SLOW_SECONDS", "60")
    running, second, third = new_job(client), new_job(client), new_job(client)
    wait_job(client, running["id"], lambda j: j["state"] == "running")
    a, b = (client.get(f"/api/jobs/{j['id']}").json() for j in (second, third))
    assert (a["state"], a["queue_position"], b["queue_position"]) == ("queued", 1, 2)
    assert 0 < a["eta"] < b["eta"]
    client.post(f"/api/jobs/{second['id']}/cancel")
    assert client.get(f"/api/jobs/{third['id']}").json()["queue_position"] == 1
    for job in (running, third):
        client.post(f"/api/jobs/{job['id']}/cancel")


@pytest.mark.slow
def test_picker_answers_a_photo_while_a_long_video_is_analysed_and_stops_for_a_client_that_left(
        make_client, tmp_path):
    import multiprocessing
    import socket

    from PIL import Image

    clip = tmp_path / "long.mp4"
    people = np.asarray(Image.open(PHOTO).convert("RGB"))
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 480, 282, "yuv420p"
        for _ in range(1500):  # 150 s of two faces: minutes to analyse here
            for packet in stream.encode(av.VideoFrame.from_ndarray(people, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    client = make_client()
    video, photo = upload(client, clip), upload(client, PHOTO)
    before = {p.pid for p in multiprocessing.active_children()}
    visitor = socket.create_connection(("127.0.0.1", client.live.port))  # asks for the video's faces ...
    visitor.sendall(f"GET /api/uploads/{video['id']}/faces HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    deadline = time.monotonic() + 60
    while not (helper := {p.pid for p in multiprocessing.active_children()} - before):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    res = client.get(f"/api/uploads/{photo['id']}/faces")  # ... meanwhile another visitor: the photo's
    assert res.status_code == 200 and len(res.json()["faces"]) == 2
    visitor.setblocking(False)
    with pytest.raises(BlockingIOError):
        visitor.recv(1)  # the video's answer has not come: the photo did not wait behind it
    visitor.close()  # the first visitor leaves: its detection is stopped
    deadline = time.monotonic() + 15
    while helper & {p.pid for p in multiprocessing.active_children()}:
        assert time.monotonic() < deadline, "the abandoned detection kept running"
        time.sleep(0.1)


def test_the_picker_lists_persons_and_a_job_makes_the_chosen_one_speak_in_each_of_their_shots(make_client, tmp_path):
    """woman | man | woman, cut together: two persons, the woman with a span per shot; choosing her animates
    her two shots and leaves the man's shot as it was."""
    from PIL import Image

    from lipdub.media import iter_frames

    clip = Path(__file__).parents[1] / "data" / "faces" / "cut_aba.mp4"  # 3 shots of 1 s (25 frames) each
    client = make_client()  # the real pipeline
    video, audio = upload(client, clip), upload(client, SPEECH)
    faces = client.get(f"/api/uploads/{video['id']}/faces").json()["faces"]
    assert len(faces) == 2 and len({f["id"] for f in faces}) == 2
    woman, man = sorted(faces, key=lambda f: -len(f["spans"]))
    assert [t for span in woman["spans"] for t in span] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.05)
    assert [t for span in man["spans"] for t in span] == pytest.approx([1.0, 2.0], abs=0.05)
    assert (woman["number"], woman["start"], woman["end"]) == (1, 0.0, pytest.approx(3.0, abs=0.05))
    assert woman["box"] is not None and man["box"] is None  # only she is on the first frame
    for f in faces:
        thumb = Image.open(io.BytesIO(base64.b64decode(f["thumbnail"].split(",", 1)[1])))
        assert min(thumb.size) > 40
    job = client.post("/api/jobs", json={"media": video["id"], "audio": audio["id"], "face_id": woman["id"]})
    assert job.status_code == 201, job.text
    done = wait_job(client, job.json()["id"], ended, timeout=240)
    assert done["state"] == "done", done["error"]
    assert done["result"]["speakers"][0]["face"] == woman["id"]
    out = tmp_path / "dl.mp4"
    out.write_bytes(client.get(done["result_url"]).content)
    change = [float(np.abs(a.astype(np.int16) - b.astype(np.int16))[96:, 48:144].mean())  # lower middle: mouths
              for a, b in zip(iter_frames(clip), iter_frames(out), strict=True)]
    her_first, his, her_second = (change[i:i + 25] for i in (0, 25, 50))
    assert max(his) < 3.0  # his shot: only the re-encoding's noise (measured ~2 per pixel)
    assert min(np.mean(her_first), np.mean(her_second)) > 2 * np.mean(his)  # hers: her mouth moves (measured 7-8)
