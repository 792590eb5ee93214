"""Public mode's visitors: each browser gets a signed session id in a cookie (HttpOnly, SameSite=Strict), and
every upload and job it makes belongs to that id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "lipdub_session"
SCOPE_KEY = "lipdub.visitor"


@dataclass(frozen=True)
class Visitor:
    """Who asks: `owner` is the visitor's session id (None: the server's own, outside public mode); the admin
    (public mode with the token) sees everything."""

    owner: str | None
    admin: bool

    def sees(self, owner: str | None) -> bool:
        return self.admin or owner == self.owner


def load_secret(path: Path) -> bytes:
    """The signing key kept in the data folder (made once, readable by the owner only), so sessions survive a
    restart."""
    if not path.is_file():
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
        os.replace(tmp, path)
    return path.read_bytes()


def _mac(secret: bytes, sid: str) -> str:
    digest = hmac.new(secret, sid.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Sessions:
    """ASGI middleware: puts the visitor's session id in `scope[SCOPE_KEY]`, minting (and setting) a new one when
    the request has no validly signed cookie."""

    def __init__(self, app: ASGIApp, secret: bytes, max_age: int) -> None:
        self.app, self.secret, self.max_age = app, secret, max_age

    def verify(self, value: str | None) -> str | None:
        sid, _, mac = (value or "").partition(".")
        return sid if sid and mac and hmac.compare_digest(mac, _mac(self.secret, sid)) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        sid = self.verify(cookie_parser(headers.get("cookie", "")).get(COOKIE))
        fresh = sid is None
        if fresh:
            sid = secrets.token_urlsafe(18)
        scope[SCOPE_KEY] = sid
        cookie = (f"{COOKIE}={sid}.{_mac(self.secret, sid)}; Path=/; Max-Age={self.max_age}; HttpOnly; "
                  f"SameSite=Strict" + ("; Secure" if scope.get("scheme") == "https" else ""))

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)
