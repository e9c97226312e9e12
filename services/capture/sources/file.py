"""A video file or a folder of images, looped: replayable footage as a camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np

from services.capture.sources import Captured, Pacer, Source, SourceError, now_pair

if TYPE_CHECKING:
    from common.config import CaptureConfig

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
DEFAULT_IMAGE_FPS = 10.0


class FileSource(Source):
    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.path = Path(config.path).expanduser()
        self._frames: Iterator[np.ndarray] | None = None
        self._pacer: Pacer | None = None

    def open(self) -> None:
        if not self.config.path:
            raise SourceError("capture.path is empty: the file source needs a video or a folder")
        if self.path.is_dir():
            images = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise SourceError(f"{self.path}: no images in folder")
            native = DEFAULT_IMAGE_FPS
            self._frames = self._loop_images(images)
        elif self.path.is_file():
            try:
                with av.open(str(self.path)) as probe:
                    rate = probe.streams.video[0].average_rate
            except (av.error.FFmpegError, IndexError) as exc:
                raise SourceError(f"{self.path}: not a readable video ({exc})") from None
            native = float(rate) if rate else DEFAULT_IMAGE_FPS
            self._frames = self._loop_video()
        else:
            raise SourceError(f"{self.path}: no such file or folder")
        self.fps = self.config.file_fps or native
        self._pacer = Pacer(self.fps)

    def _loop_images(self, images: list[Path]) -> Iterator[np.ndarray]:
        while True:
            for image in images:
                frame = cv2.imread(str(image), cv2.IMREAD_COLOR)
                if frame is not None:  # a corrupt image is skipped, not fatal
                    yield frame

    def _loop_video(self) -> Iterator[np.ndarray]:
        while True:
            try:
                with av.open(str(self.path)) as container:
                    for frame in container.decode(video=0):
                        yield frame.to_ndarray(format="bgr24")
            except av.error.FFmpegError as exc:
                raise SourceError(f"{self.path}: {exc}") from None

    def read(self) -> Captured:
        assert self._frames is not None and self._pacer is not None, "open() first"
        frame = next(self._frames)
        self._pacer.wait()
        ts, pts = now_pair()
        return Captured(frame, ts, pts)
