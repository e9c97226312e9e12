"""A network camera: MJPEG over HTTP or RTSP, through FFmpeg (PyAV).

FFmpeg already speaks multipart MJPEG and RTSP; this only maps its failures to
``SourceError`` so the capture service reconnects with back-off. An MJPEG
camera's frames are handed on as the camera's JPEGs (demuxed, not decoded):
the capture service decodes only what its consumers need. A plain ``http://``
MJPEG camera is read without FFmpeg (``services.capture.sources.mjpeg_http``),
so PyAV is loaded only for the other cameras (and by the encoder, once a clip
is written).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from services.capture.sources import Captured, Source, SourceError, now_pair
from services.capture.sources.mjpeg_http import MjpegHttp, NotMjpeg

if TYPE_CHECKING:
    import av

    from common.config import CaptureConfig

OPEN_TIMEOUT = 5.0
READ_TIMEOUT = 5.0


class UrlSource(Source):
    def __init__(self, config: CaptureConfig) -> None:
        if not config.url:
            raise SourceError("capture.url is empty: the url source needs an http:// or rtsp:// URL")
        self.url = config.url
        self._container: av.container.InputContainer | None = None
        self._mjpeg: MjpegHttp | None = None
        self._frames: Iterator[Captured] | None = None
        self._ffmpeg = not self.url.startswith("http://")  # learnt at the first answer
        self._errors: tuple[type[Exception], ...] = ()  # what a read may raise besides OSError

    def open(self) -> None:
        if not self._ffmpeg:
            try:
                self._open_mjpeg()
                return
            except NotMjpeg:
                self._ffmpeg = True  # for good: the camera is what it is
        self._open_ffmpeg()

    def _open_mjpeg(self) -> None:
        from services.capture.jpeg import JpegError, jpeg_size

        self._mjpeg = MjpegHttp(self.url, OPEN_TIMEOUT, READ_TIMEOUT)
        try:
            self._mjpeg.open()
            first = self._mjpeg.next_jpeg()
            try:
                self.size = jpeg_size(first)
            except JpegError:
                self.size = None  # said at the first frame, as for any broken JPEG
        except OSError as exc:
            self.close()
            raise SourceError(f"{self._redacted()}: {exc}") from None
        self.fps = None  # an MJPEG camera over HTTP says no rate: the frames tell it
        self._frames = self._parts(self._mjpeg, first)

    @staticmethod
    def _parts(stream: MjpegHttp, first: bytes) -> Iterator[Captured]:
        jpeg = first
        while True:
            ts, pts = now_pair()
            yield Captured(None, ts, pts, jpeg=jpeg)
            jpeg = stream.next_jpeg()

    def _open_ffmpeg(self) -> None:
        import av

        self._errors = (av.error.FFmpegError,)

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
        except (OSError, *self._errors) as exc:
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
        if self._mjpeg is not None:
            self._mjpeg.close()
        self._container, self._mjpeg = None, None
        self._frames = None

    def _redacted(self) -> str:
        """The URL without credentials, for logs."""
        scheme, sep, rest = self.url.partition("://")
        return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}"
