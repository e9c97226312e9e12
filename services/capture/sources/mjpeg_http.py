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
import http.client
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
        self._conn: http.client.HTTPConnection | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._boundary = b""
        self._at_part = False  # the boundary line of the next part is already read

    def open(self) -> None:
        """Connect and check the answer; ``OSError`` (``http.client`` errors
        included) when the camera cannot be reached, ``NotMjpeg`` when it
        sends something else."""
        p = self._parts
        self._conn = http.client.HTTPConnection(p.hostname or "", p.port,
                                                timeout=self._open_timeout)
        headers = {"Accept": "multipart/x-mixed-replace, image/jpeg, */*"}
        if p.username is not None:
            pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        path = (p.path or "/") + (f"?{p.query}" if p.query else "")
        try:
            self._conn.request("GET", path, headers=headers)
            resp = self._conn.getresponse()
            if self._conn.sock is not None:
                self._conn.sock.settimeout(self._read_timeout)
        except http.client.HTTPException as exc:  # a timeout is an OSError already
            self.close()
            raise OSError(str(exc) or type(exc).__name__) from None
        kind = resp.getheader("Content-Type", "")
        if resp.status == 401 and "basic" not in resp.getheader("WWW-Authenticate", "").lower():
            self.close()
            raise NotMjpeg("the camera asks for an authentication other than basic")
        if resp.status != 200:
            self.close()
            raise OSError(f"HTTP {resp.status} {resp.reason}")
        boundary = _boundary(kind)
        if boundary is None:
            self.close()
            raise NotMjpeg(f"Content-Type {kind!r} is not multipart/x-mixed-replace")
        self._resp, self._boundary = resp, boundary

    def next_jpeg(self) -> bytes:
        """The next part's bytes; ``OSError`` when the stream breaks or ends."""
        resp = self._resp
        if resp is None:
            raise OSError("not open")
        try:
            if not self._at_part:
                self._skip_to_boundary(resp)
            self._at_part = False
            length = None
            for _ in range(MAX_HEADER_LINES):
                line = _line(resp)
                if not line.strip():
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length is not None:
                if not 0 < length <= MAX_PART:
                    raise OSError(f"a part of {length} bytes")
                data = _exactly(resp, length)
            else:
                data = self._up_to_boundary(resp)
        except (http.client.HTTPException, ValueError) as exc:
            raise OSError(str(exc) or type(exc).__name__) from None
        return data

    def _is_boundary(self, line: bytes) -> bool:
        line = line.rstrip()
        return line in (b"--" + self._boundary, self._boundary) or line.startswith(
            b"--" + self._boundary + b"--")

    def _skip_to_boundary(self, resp: http.client.HTTPResponse) -> None:
        for _ in range(MAX_HEADER_LINES):
            line = _line(resp)
            if self._is_boundary(line):
                return
        raise OSError("no part boundary in the stream")

    def _up_to_boundary(self, resp: http.client.HTTPResponse) -> bytes:
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
        if self._conn is not None:
            self._conn.close()
        self._conn, self._resp = None, None


def _boundary(content_type: str) -> bytes | None:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/x-mixed-replace":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"').encode()
    return None


def _line(resp: http.client.HTTPResponse) -> bytes:
    line = resp.readline(8192)
    if not line:
        raise OSError("stream ended")
    return line


def _exactly(resp: http.client.HTTPResponse, n: int) -> bytes:
    data = resp.read(n)
    if len(data) != n:
        raise OSError("stream ended inside a part")
    return data
