"""A network camera: MJPEG over HTTP or RTSP, through FFmpeg (PyAV).

FFmpeg already speaks multipart MJPEG and RTSP; this only maps its failures to
``SourceError`` so the capture service reconnects with back-off. An MJPEG
camera's frames are handed on as the camera's JPEGs (demuxed, not decoded):
the capture service decodes only what its consumers need.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import av

from services.capture.sources import Captured, Source, SourceError, now_pair

if TYPE_CHECKING:
    from common.config import CaptureConfig

OPEN_TIMEOUT = 5.0
READ_TIMEOUT = 5.0


class UrlSource(Source):
    def __init__(self, config: CaptureConfig) -> None:
        if not config.url:
            raise SourceError("capture.url is empty: the url source needs an http:// or rtsp:// URL")
        self.url = config.url
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[Captured] | None = None

    def open(self) -> None:
        options = {"rtsp_transport": "tcp"} if self.url.startswith("rtsp") else {}
        try:
            self._container = av.open(self.url, options=options,
                                      timeout=(OPEN_TIMEOUT, READ_TIMEOUT))
            if not self._container.streams.video:
                raise SourceError("no video stream")
            stream = self._container.streams.video[0]
            ctx = stream.codec_context
            self.size = (ctx.width, ctx.height) if ctx.width and ctx.height else None
            # An MJPEG camera over HTTP says no rate (FFmpeg guesses 25): the
            # frames tell it.
            self.fps = None
            if ctx.name == "mjpeg":
                self._frames = self._jpegs(self._container)
            else:
                self._frames = self._decoded(self._container)
        except (av.error.FFmpegError, OSError, SourceError) as exc:
            self.close()
            raise SourceError(f"{self._redacted()}: {exc}") from None

    def read(self) -> Captured:
        assert self._frames is not None, "open() first"
        try:
            frame = next(self._frames)
        except StopIteration:
            raise SourceError(f"{self._redacted()}: stream ended") from None
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"{self._redacted()}: {exc}") from None
        return frame

    @staticmethod
    def _jpegs(container: av.container.InputContainer) -> Iterator[Captured]:
        for packet in container.demux(video=0):
            if packet.size:
                ts, pts = now_pair()
                yield Captured(None, ts, pts, jpeg=bytes(packet))

    @staticmethod
    def _decoded(container: av.container.InputContainer) -> Iterator[Captured]:
        for frame in container.decode(video=0):
            ts, pts = now_pair()
            yield Captured(frame.to_ndarray(format="bgr24"), ts, pts)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None

    def _redacted(self) -> str:
        """The URL without credentials, for logs."""
        scheme, sep, rest = self.url.partition("://")
        return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}"
