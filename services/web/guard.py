"""The door of the web app: an ASGI middleware that lets a request through
only with a valid session cookie or API key, whatever route it is for.

Checking in one middleware rather than per route means a route added later is
closed by default; the test walks the route table to prove it. Only the login
page is open. Also sets the security headers every response carries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.paths import Home
from services.web import auth

COOKIE = "pisentry_session"
PUBLIC_PATHS = frozenset({"/login"})
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     (b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
      b"style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
      b"frame-ancestors 'none'; form-action 'self'")),
]
UNAUTHORIZED_HTML = (b"<!doctype html><meta charset=utf-8><title>Login required</title>"
                     b"<meta http-equiv=refresh content='0; url=/login'>"
                     b"<p>Login required: <a href=/login>log in</a></p>")


class Gate:
    """The password, the session signer and the API key, kept current: a
    password changed with ``pisentry set-password`` takes effect (and ends
    every session) without a restart."""

    def __init__(self, home: Home, api_key: str, session_hours: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.home = home
        self.api_key = api_key
        self.lifetime = session_hours * 3600
        self.clock = clock
        self.limiter = auth.LoginLimiter()
        self._key = auth.secret_key(home)
        self._mtime: float | None = None
        self._record: dict[str, str | int] | None = None
        self._sessions = auth.Sessions(self._key, "", self.lifetime)

    def _refresh(self) -> None:
        path: Path = auth.password_file(self.home)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if mtime != self._mtime:
            self._mtime = mtime
            self._record = auth.load_password_record(self.home)
            digest = str(self._record.get("hash", "")) if self._record else ""
            self._sessions = auth.Sessions(self._key, digest, self.lifetime)

    def check_password(self, password: str) -> bool:
        self._refresh()
        return self._record is not None and auth.verify_password(password, self._record)

    def new_session(self) -> str:
        self._refresh()
        return self._sessions.issue(self.clock())

    def end_session(self, token: str) -> None:
        self._sessions.revoke(token, self.clock())

    def allows(self, cookie_token: str | None, api_key: str | None) -> bool:
        if auth.api_key_ok(api_key, self.api_key):
            return True
        if not cookie_token:
            return False
        self._refresh()
        return self._record is not None and self._sessions.valid(cookie_token, self.clock())


def session_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed cookie header is just no session
                continue
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


class GuardMiddleware:
    def __init__(self, app: ASGIApp, gate: Gate, api_key_header: str) -> None:
        self.app = app
        self.gate = gate
        self.api_key_header = api_key_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        key = next((v.decode("latin-1") for n, v in headers if n == self.api_key_header), None)
        allowed = (scope["path"] in PUBLIC_PATHS
                   or self.gate.allows(session_token(headers), key))
        if scope["type"] == "websocket":
            if allowed:
                await self.app(scope, receive, send)
            else:
                await self._deny_websocket(scope, send)
            return
        if not allowed:
            await self._deny_http(headers, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _deny_http(self, headers: list[tuple[bytes, bytes]], send: Send) -> None:
        accept = next((v for n, v in headers if n == b"accept"), b"")
        if b"text/html" in accept:
            body, ctype = UNAUTHORIZED_HTML, b"text/html; charset=utf-8"
        else:
            body, ctype = b'{"detail":"not authenticated"}', b"application/json"
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", ctype),
                                (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Cookie, ApiKey"),
                                *SECURITY_HEADERS]})
        await send({"type": "http.response.body", "body": body})

    async def _deny_websocket(self, scope: Scope, send: Send) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            body = b'{"detail":"not authenticated"}'
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
