"""What every request meets before any route reads it: the outermost ASGI
middleware of the web app.

- Cross-site requests are refused. Every request that is not GET, HEAD or
  OPTIONS, and every WebSocket handshake, must come from one of our own pages:
  ``Sec-Fetch-Site`` (sent by every current browser) must say ``same-origin``
  (or ``none``: typed by the user) and ``Origin``, when sent, must name the
  host the request was sent to. A page on another port of the same host is
  ``same-site``, not ``same-origin``, and is refused too. Clients that send
  neither header are not browsers (curl, scripts with the API key): a web
  page cannot make a browser leave both out. Because this is checked here,
  a route added later is covered without doing anything, and the pages need
  no token.
- Request bodies are bounded before they are read: a declared
  ``Content-Length`` over the limit is answered 413 at once, and a chunked
  body is counted as it arrives and cut at the limit. Headers are bounded by
  the HTTP parser (``service.py`` runs uvicorn's h11 with a 16 KiB cap on the
  request head: httptools has no such cap).
- Every response carries the security headers, the 401s, 413s and 500s too;
  an exception that escapes a route becomes a 500 here (with the headers)
  rather than in Starlette's outer error handler, which adds none.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of a request made by one of our own pages (or typed).
OWN_SITES = frozenset({b"same-origin", b"none"})
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
# Routes anyone may call before logging in get only what they need.
SMALL_BODIES = {"/login": 4 * 1024}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     (b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
      b"style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
      b"frame-ancestors 'none'; form-action 'self'")),
]
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class BodyTooLarge(Exception):
    """Raised into the route that kept reading past the limit."""


def _netloc(scheme: str, hostport: str) -> str:
    host, sep, port = hostport.lower().rpartition(":")
    if not sep or "]" in port:  # no port, or the colons of a bare IPv6 address
        return hostport.lower()
    return host if port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def cross_site(scope: Scope) -> str | None:
    """Why this request did not come from one of our own pages, or None."""
    site = origin = host = None
    for name, value in scope.get("headers", []):
        if name == b"sec-fetch-site":
            site = value
        elif name == b"origin":
            origin = value
        elif name == b"host":
            host = value
    if site is not None and site not in OWN_SITES:
        return f"Sec-Fetch-Site: {site.decode('latin-1')}"
    if origin is None or (origin == b"null" and site is not None):
        # "null": a form posted from a page with Referrer-Policy no-referrer
        # (ours); Sec-Fetch-Site, checked above, then says where it came from.
        return None
    text = origin.decode("latin-1")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return f"Origin: {text[:100]}"
    # Compared without the scheme: behind a TLS proxy the request arrives as
    # http while the page is https, and one port never serves both.
    scheme = str(scope.get("scheme", "http"))
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    if _netloc(parts.scheme, parts.netloc) != _netloc(scheme, host.decode("latin-1")):
        return f"Origin: {text[:100]}"
    return None


def body_limit(scope: Scope) -> int:
    return SMALL_BODIES.get(scope["path"], MAX_BODY_BYTES)


class ShieldMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        why = cross_site(scope)
        if why is None:
            async def send_with_headers(message: Message) -> None:
                if message["type"] == "websocket.http.response.start":
                    message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
                await send(message)
            await self.app(scope, receive, send_with_headers)
            return
        log.info("refused a cross-site WebSocket to %s (%s)", scope["path"], why)
        if "websocket.http.response" in scope.get("extensions", {}):
            body = _detail("cross-site request refused")
            await send({"type": "websocket.http.response.start", "status": 403,
                        "headers": [*_headers(b"application/json", body),
                                    *SECURITY_HEADERS]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return  # we already answered (413): the route's own reply is dropped
                started = True
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            elif not started:
                return
            await send(message)

        async def reply(status: int, detail: str) -> None:
            nonlocal started
            if started:
                return
            body = _detail(detail)
            await send({"type": "http.response.start", "status": status,
                        "headers": [*_headers(b"application/json", body),
                                    (b"connection", b"close"), *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": body})
            started = True

        if scope["method"] not in SAFE_METHODS:
            why = cross_site(scope)
            if why is not None:
                log.info("refused a cross-site %s %s (%s)", scope["method"], scope["path"], why)
                await reply(403, "cross-site request refused")
                return
        limit = body_limit(scope)
        declared = next((v for n, v in scope.get("headers", []) if n == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await reply(413, f"request body over {limit} bytes")
            return
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    await reply(413, f"request body over {limit} bytes")
                    raise BodyTooLarge(f"{scope['path']}: body over {limit} bytes")
            return message

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except BodyTooLarge:
            await reply(413, f"request body over {limit} bytes")
        except RecursionError:  # a parser fed 100,000 nested brackets
            await reply(400, "request too deeply nested")
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            await reply(500, "internal error")


def _detail(text: str) -> bytes:
    return json.dumps({"detail": text}).encode()


def _headers(ctype: bytes, body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
