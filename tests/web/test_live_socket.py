"""The live WebSocket on a real uvicorn server on 127.0.0.1, driven by a websockets client: frames come back as
JPEG with their timestamps at most 150 ms behind the audio sent, the mouth (FaceMesh on the decoded JPEGs)
rests in silence and opens in speech, a bad chunk gets a JSON error and the session goes on, each client has
its own session and leaving frees it, and the token and Host rules of `lipdub serve` hold."""

from __future__ import annotations

import json
import struct
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import uvicorn
from conftest import free_port
from mediapipe.python.solutions import face_mesh as mp_mesh
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from lipdub.media import load_audio
from lipdub.web import WebSettings
from lipdub.web.live import HEADER, create_live_app

DATA = Path(__file__).parent.parent / "data"
PHOTO = DATA / "viseme" / "portraits" / "img_obama_smile_teeth.jpg"
SPEECH = DATA / "viseme" / "long_silence_12s.flac"  # speech from 4.69 s


class Server:
    def __init__(self, **settings) -> None:
        self.port = free_port()
        app = create_live_app(PHOTO, WebSettings(warm_up=False, **settings))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.ws = f"ws://127.0.0.1:{self.port}/api/live"
        self.http = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return load_audio(SPEECH, sr=16000)


def frame_of(message: bytes) -> tuple[int, float, float, np.ndarray]:
    index, t, received = HEADER.unpack_from(message)
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(message[HEADER.size:], np.uint8), cv2.IMREAD_COLOR),
                         cv2.COLOR_BGR2RGB)
    return index, t, received, image


def stream(ws, samples: np.ndarray, chunk: int = 320) -> tuple[list, list]:
    """Send the samples in chunks while a thread collects what comes back; end the session; return
    (frames as (index, t, received, jpeg bytes), JSON messages)."""
    frames, texts = [], []

    def read():
        for message in ws:
            if isinstance(message, bytes):
                frames.append(message)
            else:
                texts.append(json.loads(message))
                if texts[-1]["type"] == "end":
                    return

    reader = threading.Thread(target=read)
    reader.start()
    for k in range(0, len(samples), chunk):
        ws.send(samples[k:k + chunk].astype("<f4").tobytes())
    ws.send(json.dumps({"type": "end"}))
    reader.join(120)
    return [HEADER.unpack_from(m) + (m,) for m in frames], texts


def test_frames_follow_the_audio_with_timestamps_and_bounded_latency(server, audio):
    samples = audio[int(3.7 * 16000):int(7.0 * 16000)]  # 1 s of silence, then speech
    with connect(server.ws) as ws:
        ws.send(json.dumps({"motion": "none"}))
        ready = json.loads(ws.recv())
        assert ready["type"] == "ready" and (ready["width"], ready["height"]) == (320, 400)
        frames, texts = stream(ws, samples)
    assert texts[-1] == {"type": "end"} and not [t for t in texts if t["type"] == "error"]
    assert [f[0] for f in frames] == list(range(int(np.ceil(len(samples) * 25 / 16000))))
    assert all(abs(t - i / 25) < 1e-9 for i, t, *_ in frames)
    latency = np.array([received - t for _, t, received, _ in frames[:-5]])  # the flushed ones come at the end
    assert latency.max() <= 0.150 + 1e-9 and latency.min() >= 0.0
    mesh = mp_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    ops = {}
    for _, t, _, message in frames[::4]:
        image = frame_of(message)[3]
        assert image.shape == (400, 320, 3)
        lm = mesh.process(image).multi_face_landmarks[0].landmark
        p = np.array([(q.x * 320, q.y * 400) for q in lm])
        ops[t] = np.linalg.norm(p[14] - p[13]) / np.linalg.norm(p[152] - p[168])
    silent = [o for t, o in ops.items() if t < 0.9]
    talking = [o for t, o in ops.items() if t > 1.3]
    assert max(silent) < 0.05, silent
    assert np.quantile(talking, 0.8) > 0.06, talking


def test_a_bad_chunk_gets_an_error_message_and_the_session_goes_on(server, audio):
    with connect(server.ws) as ws:
        ws.send(json.dumps({"motion": "none"}))
        assert json.loads(ws.recv())["type"] == "ready"
        good = audio[:16000].astype("<f4").tobytes()
        ws.send(good[:16000])  # 0.25 s
        bad = [b"\x00\x01\x02", np.array([0.1, np.nan], "<f4").tobytes(), b"",
               np.full(320, 1000.0, "<f4").tobytes(), json.dumps({"type": "louder"})]
        errors = []
        frames = []
        for message in bad:
            ws.send(message)
            while True:
                reply = ws.recv(timeout=30)
                if isinstance(reply, bytes):
                    frames.append(reply)
                    continue
                errors.append(json.loads(reply))
                break
        assert [e["type"] for e in errors] == ["error"] * len(bad)
        text = [e["message"] for e in errors]
        assert "not a whole number of float32 samples" in text[0]
        assert "NaN" in text[1] and "empty" in text[2] and "outside [-1, 1]" in text[3] and "binary" in text[4]
        more, texts = stream(ws, audio[4000:16000])
    indices = [HEADER.unpack_from(f)[0] for f in frames] + [f[0] for f in more]
    assert indices == list(range(25))  # 1 s sent in all: 25 frames, none lost or repeated


def test_each_client_has_its_own_session_and_leaving_frees_it(server, audio):
    status = lambda: httpx.get(f"{server.http}/api/live/status").json()["sessions"]  # noqa: E731
    with connect(server.ws) as b:
        with connect(server.ws) as a:
            for ws in (a, b):
                ws.send(json.dumps({"motion": "idle"}))
                assert json.loads(ws.recv())["type"] == "ready"
            assert status() == 2
            a.send(audio[:8000].tobytes())  # half a second to one client only
            assert HEADER.unpack_from(a.recv(timeout=30))[0] == 0
            with pytest.raises(TimeoutError):
                b.recv(timeout=1.0)  # the other client's session heard nothing
        deadline = time.monotonic() + 10
        while status() != 1:
            assert time.monotonic() < deadline, "a closed connection kept its session"
            time.sleep(0.05)


@pytest.mark.parametrize("first, says", [
    ({"motion": "wild"}, "motion must be one of"),
    ({"seed": -1}, "seed must be an integer"),
    ({"quality": "best"}, "quality must be an integer"),
    ("[1, 2]", "must be a JSON object"),
])
def test_bad_settings_in_the_first_message_are_named_before_closing(server, first, says):
    with connect(server.ws) as ws:
        ws.send(first if isinstance(first, str) else json.dumps(first))
        reply = json.loads(ws.recv(timeout=30))
        assert reply["type"] == "error" and says in reply["message"]
        with pytest.raises(ConnectionClosed) as err:
            ws.recv(timeout=10)
        assert err.value.rcvd.code == 1008


def test_token_and_host_rules():
    s = Server(token="s3cret")
    try:
        with connect(s.ws) as ws:
            ws.send(json.dumps({"token": "wrong"}))
            with pytest.raises(ConnectionClosed) as err:
                ws.recv(timeout=10)
            assert err.value.rcvd.code == 1008
        with connect(s.ws) as ws:
            ws.send(json.dumps({"token": "s3cret"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        with connect(s.ws, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            ws.send(json.dumps({}))
            assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        assert httpx.get(f"{s.http}/api/live/status").status_code == 401
    finally:
        s.stop()
    s = Server()  # no token: only loopback Host names are answered
    try:
        with pytest.raises(InvalidStatus) as err:
            connect(s.ws, additional_headers={"Host": "evil.example"})
        assert err.value.response.status_code == 400
        # a page on another site, in the visitor's browser, may not open the socket (WebSockets have no CORS)
        with pytest.raises(InvalidStatus) as err:
            connect(s.ws, origin="https://evil.example")
        assert err.value.response.status_code == 403
        with connect(s.ws, origin=s.http) as ws:  # the live page itself
            ws.send(json.dumps({}))
            assert json.loads(ws.recv(timeout=30))["type"] == "ready"
    finally:
        s.stop()


def test_the_protocol_is_in_the_openapi_description(server):
    description = httpx.get(f"{server.http}/api/openapi.json").json()["info"]["description"]
    assert "/api/live" in description and "float32" in description and "<Idd" in description
    assert struct.calcsize("<Idd") == HEADER.size == 20
