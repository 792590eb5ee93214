"""`create_live_app(photo, settings)`: the live page and its WebSocket, `/api/live`: PCM in, JPEG frames out.

Each connection gets its own `LiveSession` (the photo's face is analysed once, at start, so a session starts
in well under a second); the session ends with the connection. The same access rules as `lipdub serve`:
without a token only a loopback (or the served) Host name is answered, and a browser's socket only from such a
page (Origin: WebSockets have no CORS, so a page on another site could otherwise drive the photo); with one,
a client shows it in the first message or an `Authorization: Bearer` header. The protocol is in `PROTOCOL`
(also the OpenAPI description, since OpenAPI has no way to describe a WebSocket).
"""

from __future__ import annotations

import json
import secrets
import struct
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from lipdub import __version__
from lipdub.errors import LipdubError
from lipdub.web.config import WebSettings

STATIC = Path(__file__).parent / "static"
HEADER = struct.Struct("<Idd")  # frame index (uint32), frame time (s), audio received when sent (s)
MAX_CHUNK_BYTES = 16000 * 4 * 5  # 5 s of audio in one message at most

PROTOCOL = """\
Live WebSocket `ws://HOST:PORT/api/live` (one talking-portrait session per connection):

1. The client may first send a JSON text message `{"token": "...", "motion": "natural", "seed": 0,
   "quality": 80}` (every field optional; `token` is needed when the server has one, unless sent as an
   `Authorization: Bearer` header). The server answers `{"type": "ready", "width": W, "height": H, "fps": 25,
   "lookahead_ms": 150}` (also when the first message is audio: then defaults apply).
2. The client sends audio as binary messages: little-endian float32 PCM, mono, 16 kHz, samples in [-1, 1],
   any length up to 5 s (20 ms = 320 samples = 1280 bytes is typical).
3. For every frame that becomes final the server sends a binary message: a 20-byte header `<Idd` (uint32 frame
   index, float64 frame time in seconds of audio, float64 seconds of audio received when it was sent; their
   difference is the look-ahead latency, at most `lookahead_ms`), then the frame as JPEG (the photo's size).
4. A bad message gets `{"type": "error", "message": "one line"}` and the session goes on.
5. `{"type": "end"}` flushes: the last frames come, then `{"type": "end"}`, and the server closes the socket.
"""


def create_live_app(photo: Path, settings: WebSettings | None = None, *, motion: str = "natural",
                    seed: int = 0) -> FastAPI:
    """The page (`/`), its files and the WebSocket for one photo. Raises LipdubError if it has no usable face."""
    from lipdub import faces, media
    from lipdub.web.app import LOOPBACK, LoopbackHostOnly

    settings = settings or WebSettings()
    if media.probe(photo).kind != "image":
        raise LipdubError("live needs a photo", photo)
    faces.select(faces.analyze(photo))  # detect once now (cached): sessions then start fast; no face: error
    app = FastAPIOffline(title="lipdub live", version=__version__, docs_url="/api/docs", static_url="/docs-static",
                         redoc_url=None, openapi_url="/api/openapi.json",
                         description="A photo that talks along with a live voice.\n\n" + PROTOCOL)
    app.state.live = {"photo": Path(photo), "motion": motion, "seed": seed, "token": settings.token or "",
                      "sessions": 0, "origins": LOOPBACK | {settings.host.strip("[]")}}
    if not settings.token:
        app.add_middleware(LoopbackHostOnly, allowed=LOOPBACK | {settings.host.strip("[]")})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_websocket_route("/api/live", live_socket)

    @app.get("/api/live/status", dependencies=[Depends(_require_token)])
    def status() -> dict:
        """Sessions open now (one per connected client) and the photo served."""
        return {"sessions": app.state.live["sessions"], "photo": Path(photo).name}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "live.html", media_type="text/html")

    return app


async def live_socket(ws: WebSocket) -> None:
    """One connection: configure, then audio in and frames out until the client leaves or ends."""
    conf = ws.app.state.live
    if not conf["token"] and not _origin_ok(ws.headers.get("origin"), conf["origins"]):
        await ws.close(1008)  # before the handshake: the browser sees it refused (HTTP 403)
        return
    await ws.accept()
    first = await ws.receive()
    if first["type"] == "websocket.disconnect":
        return
    try:
        options = _options(first.get("text"))
        if conf["token"] and not _token_ok(ws, options, conf["token"]):
            await ws.close(1008, "missing or wrong token")
            return
        session, quality = await run_in_threadpool(_session, conf, options)
    except LipdubError as exc:  # a bad first message: say why, then close
        await ws.send_json({"type": "error", "message": str(exc)})
        await ws.close(1008, str(exc)[:120])
        return
    await ws.send_json({"type": "ready", "width": session.size[0], "height": session.size[1], "fps": session.fps,
                        "lookahead_ms": session.voice.lookahead * 1000})
    conf["sessions"] += 1
    try:
        message = first if first.get("bytes") is not None else await ws.receive()
        while message["type"] != "websocket.disconnect":
            if message.get("bytes") is not None:
                await _audio(ws, session, message["bytes"], quality)
            elif _is_end(message.get("text")):
                for packet in await run_in_threadpool(_encoded, session, session.close(), quality):
                    await ws.send_bytes(packet)
                await ws.send_json({"type": "end"})
                await ws.close()
                return
            else:
                await ws.send_json({"type": "error", "message": "text messages: only {\"type\": \"end\"} "
                                    "after the first; send audio as binary float32 PCM"})
            message = await ws.receive()
    except WebSocketDisconnect:
        pass
    finally:
        conf["sessions"] -= 1  # the session (its VAD model, renderer and motion) goes with this call


def _origin_ok(origin: str | None, allowed: set[str]) -> bool:
    """No Origin (not a browser), or a page served from a loopback or the served host name."""
    if not origin:
        return True
    try:
        return (urlsplit(origin).hostname or "").lower() in {h.lower() for h in allowed}
    except ValueError:
        return False


def _bearer(headers) -> str:
    header = headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else ""


def _require_token(request: Request) -> None:
    token = request.app.state.live["token"]
    if token and not secrets.compare_digest(_bearer(request.headers).encode(), token.encode()):
        raise HTTPException(401, "missing or wrong token (send 'Authorization: Bearer <token>')")


def _options(text: str | None) -> dict:
    """The first message's settings ({} when the first message is audio)."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise LipdubError("the first text message must be a JSON object")
    return value


def _token_ok(ws: WebSocket, options: dict, token: str) -> bool:
    given = _bearer(ws.headers) or str(options.get("token", ""))
    return secrets.compare_digest(given.encode(), token.encode())


def _session(conf: dict, options: dict):
    """The connection's LiveSession and JPEG quality, from the first message's settings."""
    from lipdub.live import LiveSession

    motion, seed, quality = options.get("motion", conf["motion"]), options.get("seed", conf["seed"]), \
        options.get("quality", 80)
    for name, value, lo, hi in (("seed", seed, 0, 2 ** 32 - 1), ("quality", quality, 10, 95)):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise LipdubError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")
    return LiveSession(conf["photo"], motion=str(motion), seed=seed), quality


def _is_end(text: str | None) -> bool:
    try:
        return _options(text).get("type") == "end"
    except LipdubError:
        return False


async def _audio(ws: WebSocket, session, data: bytes, quality: int) -> None:
    """Push one binary message of PCM; a bad one gets an error message and changes nothing."""
    from lipdub.live import ChunkError

    try:
        packets = await run_in_threadpool(_push, session, data, quality)
    except ChunkError as exc:
        await ws.send_json({"type": "error", "message": str(exc)})
        return
    for packet in packets:
        await ws.send_bytes(packet)


def _push(session, data: bytes, quality: int) -> list[bytes]:
    return _encoded(session, session.push(decode_pcm(data)), quality)


def decode_pcm(data: bytes) -> np.ndarray:
    """Binary message -> float32 samples, or ChunkError naming what is wrong."""
    from lipdub.live import ChunkError, check_chunk

    if len(data) > MAX_CHUNK_BYTES:
        raise ChunkError(f"audio chunk: {len(data)} bytes is over 5 s of float32 PCM at 16 kHz")
    if len(data) % 4:
        raise ChunkError(f"audio chunk: {len(data)} bytes is not a whole number of float32 samples")
    raw = np.frombuffer(data, "<f4").astype(np.float32)
    chunk = check_chunk(raw)
    if float(np.abs(raw).max()) > 2.0:
        raise ChunkError("audio chunk: samples far outside [-1, 1]: send float32 PCM (not int16)")
    return chunk


def _encoded(session, frames, quality: int) -> list[bytes]:
    """Each frame as a binary message: HEADER, then the JPEG."""
    import cv2

    received = session.pushed_seconds
    out = []
    for t, frame in frames:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(HEADER.pack(int(round(t * session.fps)), t, received) + jpeg.tobytes())
    return out
