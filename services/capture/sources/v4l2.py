"""A USB webcam through OpenCV's V4L2 backend.

Asked for MJPEG first (most webcams send it, and it is what reaches the
higher sizes and rates over USB 2); when the device agrees, its JPEGs are
handed on undecoded, as an MJPEG network camera's are. Otherwise OpenCV
converts whatever the device sends to BGR.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2

from services.capture.sources import Captured, Source, SourceError, now_pair

if TYPE_CHECKING:
    from common.config import CaptureConfig

MJPG = cv2.VideoWriter.fourcc(*"MJPG")


class V4l2Source(Source):
    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self._cap: cv2.VideoCapture | None = None
        self._jpeg = False

    def open(self) -> None:
        cap = cv2.VideoCapture(self.config.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise SourceError(f"/dev/video{self.config.device}: cannot open")
        cap.set(cv2.CAP_PROP_FOURCC, MJPG)
        if self.config.width:  # else the device's own mode
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
        if self.config.fps:
            cap.set(cv2.CAP_PROP_FPS, self.config.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        self._jpeg = int(cap.get(cv2.CAP_PROP_FOURCC)) == MJPG
        if self._jpeg:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # read() returns the JPEG bytes
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (width, height) if width and height else None
        self.fps = cap.get(cv2.CAP_PROP_FPS) or None
        self._cap = cap

    def read(self) -> Captured:
        assert self._cap is not None, "open() first"
        ok, frame = self._cap.read()
        if not ok:
            raise SourceError(f"/dev/video{self.config.device}: no frame")
        ts, pts = now_pair()
        if self._jpeg:
            return Captured(None, ts, pts, jpeg=frame.tobytes())
        return Captured(frame, ts, pts)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
