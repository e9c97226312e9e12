"""An MJPEG camera over plain HTTP, read with the standard library.

A camera that answers ``multipart/x-mixed-replace`` sends one JPEG per part;
capture only needs those bytes (it decodes what its consumers ask for), and
FFmpeg through PyAV costs the capture process some 25 MB of libraries and
codec tables for a job this small. So ``UrlSource`` tries this first on an
``http://`` URL and hands the camera to FFmpeg only when the answer is
something else (``NotMjpeg``: another kind of stream, or digest auth).

Parts with a ``Content-Length`` are read as a block; parts without one up to
the next boundary line (some cameras leave the length out). Basic auth comes
from the URL's ``user:password@``, as FFmpeg takes it.
"""

from __future__ import annotations

import base64
import socket
from typing import Any
from urllib.parse import unquote, urlsplit

MAX_PART = 32 * 1024 * 1024  # a bigger "JPEG" is a broken stream, not a picture
MAX_HEADER_LINES = 64


class NotMjpeg(Exception):
    """The camera answered, but not with an MJPEG stream this reader takes."""


class MjpegHttp:
    def __init__(self, url: str, open_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise NotMjpeg(f"{parts.scheme}:// is not plain http")
        self._parts = parts
        self._open_timeout, self._read_timeout = open_timeout, read_timeout
        self._sock: socket.socket | None = None
        self._resp: Any = None  # the socket's buffered reader
        self._boundary = b""
        self._at_part = False  # the boundary line of the next part is already read

    def open(self) -> None:
        """Connect and check the answer; ``OSError`` when the camera cannot be
        reached or answers with an error, ``NotMjpeg`` when it sends
        something else.

        A plain socket, not http.client: that one brings ssl and the email
        package (6 MB of a capture process). The request is HTTP/1.0, so the
        answer is never chunked (RFC 9112: only for a 1.1 request)."""
        p = self._parts
        lines = [f"GET {(p.path or '/') + (f'?{p.query}' if p.query else '')} HTTP/1.0",
                 f"Host: {p.netloc.rsplit('@', 1)[-1]}",
                 "Accept: multipart/x-mixed-replace, image/jpeg, */*"]
        if p.username is not None:
            pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            lines.append("Authorization: Basic " + base64.b64encode(pair).decode())
        try:
            host: str | bytes = p.hostname or ""
            if host.isascii():  # as bytes: a str goes through the idna codec (0.4 MB)
                host = host.encode()
            self._sock = socket.create_connection((host, p.port or 80),
                                                  timeout=self._open_timeout)
            self._sock.settimeout(self._read_timeout)
            self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            self._resp = self._sock.makefile("rb")
            status = _line(self._resp).split(None, 2)
            headers = self._headers()
        except (OSError, ValueError) as exc:
            self.close()
            raise OSError(str(exc) or type(exc).__name__) from None
        code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        kind = headers.get(b"content-type", b"").decode(errors="replace")
        if code == 401 and b"basic" not in headers.get(b"www-authenticate", b"").lower():
            self.close()
            raise NotMjpeg("the camera asks for an authentication other than basic")
        if code != 200:
            self.close()
            raise OSError(f"HTTP {b' '.join(status[1:]).decode(errors='replace').strip()}")
        boundary = _boundary(kind)
        if boundary is None or b"transfer-encoding" in headers:
            self.close()
            raise NotMjpeg(f"Content-Type {kind!r} is not multipart/x-mixed-replace")
        self._boundary = boundary

    def _headers(self) -> dict[bytes, bytes]:
        """Header lines up to the empty one, names lower-case."""
        out: dict[bytes, bytes] = {}
        for _ in range(MAX_HEADER_LINES):
            line = _line(self._resp)
            if not line.strip():
                return out
            name, _, value = line.partition(b":")
            out[name.strip().lower()] = value.strip()
        raise OSError("too many header lines")

    def next_jpeg(self) -> bytes:
        """The next part's bytes; ``OSError`` when the stream breaks or ends."""
        resp = self._resp
        if resp is None:
            raise OSError("not open")
        try:
            if not self._at_part:
                self._skip_to_boundary(resp)
            self._at_part = False
            header = self._headers().get(b"content-length")
            length = int(header) if header is not None else None
            if length is not None:
                if not 0 < length <= MAX_PART:
                    raise OSError(f"a part of {length} bytes")
                data = _exactly(resp, length)
            else:
                data = self._up_to_boundary(resp)
        except ValueError as exc:  # a length that is no number
            raise OSError(str(exc)) from None
        return data

    def _is_boundary(self, line: bytes) -> bool:
        line = line.rstrip()
        return line in (b"--" + self._boundary, self._boundary) or line.startswith(
            b"--" + self._boundary + b"--")

    def _skip_to_boundary(self, resp: Any) -> None:
        for _ in range(MAX_HEADER_LINES):
            line = _line(resp)
            if self._is_boundary(line):
                return
        raise OSError("no part boundary in the stream")

    def _up_to_boundary(self, resp: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = resp.readline(MAX_PART)
            if not line:
                raise OSError("stream ended")
            if self._is_boundary(line):
                self._at_part = True
                break
            chunks.append(line)
            size += len(line)
            if size > MAX_PART:
                raise OSError("a part without an end")
        data = b"".join(chunks)
        return data[:-2] if data.endswith(b"\r\n") else data.rstrip(b"\n")

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
        if self._sock is not None:
            self._sock.close()
        self._sock, self._resp = None, None


def _boundary(content_type: str) -> bytes | None:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/x-mixed-replace":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"').encode()
    return None


def _line(resp: Any) -> bytes:
    line = resp.readline(8192)
    if not line:
        raise OSError("stream ended")
    return line


def _exactly(resp: Any, n: int) -> bytes:
    data = resp.read(n)
    if len(data) != n:
        raise OSError("stream ended inside a part")
    return data
