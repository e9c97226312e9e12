"""The door of the web app: an ASGI middleware that lets a request through
only with a valid session cookie or API key, whatever route it is for.

Checking in one middleware rather than per route means a route added later is
closed by default; the test walks the route table to prove it. Only the login
page is open. API key guesses are limited per client like passwords
(``auth.AttemptLimiter``); the security headers and the cross-site check are
``shield.ShieldMiddleware``'s, which runs before this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from common.paths import Home
from services.web import auth

log = logging.getLogger(__name__)

COOKIE = "pisentry_session"
PUBLIC_PATHS = frozenset({"/login"})
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
        self.limiter = auth.AttemptLimiter()  # passwords at POST /login
        self.key_limiter = auth.AttemptLimiter()  # API keys, on every route
        self._key = auth.secret_key(home)
        self._mtime: float | None = None
        self._record: dict[str, str | int] | None = None
        self._revoked_file = home.state_dir / "web_revoked.json"
        self._sessions = auth.Sessions(self._key, "", self.lifetime, self._revoked_file)

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
            self._sessions = auth.Sessions(self._key, digest, self.lifetime,
                                           self._revoked_file)

    def check_password(self, password: str) -> bool:
        self._refresh()
        return self._record is not None and auth.verify_password(password, self._record)

    def new_session(self) -> str:
        self._refresh()
        return self._sessions.issue(self.clock())

    def end_session(self, token: str) -> None:
        self._sessions.revoke(token, self.clock())

    def key_wait(self, client: str, api_key: str) -> float | None:
        """For a request that carries an API key: None when the key is right,
        0 when it is wrong, else the seconds ``client`` must wait after too
        many wrong keys (the key is then not even compared)."""
        now = self.clock()
        wait = self.key_limiter.attempt(client, now)
        if wait > 0:
            return wait
        if auth.api_key_ok(api_key, self.api_key):
            self.key_limiter.succeeded(client, now)
            return None
        return 0.0

    def session_ok(self, cookie_token: str | None) -> bool:
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
        allowed = scope["path"] in PUBLIC_PATHS
        if not allowed and key is not None:
            client = scope["client"][0] if scope.get("client") else "?"
            wait = self.gate.key_wait(client, key)
            if wait:
                log.warning("API key rate limit hit by %s", client)
                await self._deny(scope, headers, send, 429, wait)
                return
            allowed = wait is None
        allowed = allowed or self.gate.session_ok(session_token(headers))
        if allowed:
            await self.app(scope, receive, send)
        else:
            await self._deny(scope, headers, send, 401)

    async def _deny(self, scope: Scope, headers: list[tuple[bytes, bytes]], send: Send,
                    status: int, wait: float = 0.0) -> None:
        if scope["type"] == "websocket":
            await self._deny_websocket(scope, send, status)
        else:
            await self._deny_http(headers, send, status, wait)

    async def _deny_http(self, headers: list[tuple[bytes, bytes]], send: Send, status: int,
                         wait: float) -> None:
        accept = next((v for n, v in headers if n == b"accept"), b"")
        extra = [(b"www-authenticate", b"Cookie, ApiKey")]
        if status == 429:
            body, ctype = b'{"detail":"too many wrong API keys"}', b"application/json"
            extra = [(b"retry-after", str(int(wait) + 1).encode())]
        elif b"text/html" in accept:
            body, ctype = UNAUTHORIZED_HTML, b"text/html; charset=utf-8"
        else:
            body, ctype = b'{"detail":"not authenticated"}', b"application/json"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype),
                                (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})

    async def _deny_websocket(self, scope: Scope, send: Send, status: int) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            body = b'{"detail":"not authenticated"}'
            await send({"type": "websocket.http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
