"""The Raspberry Pi camera, through picamera2: kept thin and isolated.

As picamera2's own ``capture_circular_improved`` example does: the main stream
goes into the hardware H264 encoder (software libav on a Pi 5, picamera2 picks),
a lores YUV420 stream feeds detection. picamera2 and libcamera only exist on
Raspberry Pi OS (apt ``python3-picamera2``), so they are imported in ``open``.

Threading: picamera2 calls ``outputframe`` on its encoder thread; packets are
queued here and published by the capture service's own thread, because a zmq
socket must not be shared between threads. The annotation runs in picamera2's
``pre_callback`` on the main stream, before encoding, so it is in the video.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from services.capture.frames import fit
from services.capture.sources import Captured, Source, SourceError

if TYPE_CHECKING:
    from common.config import CaptureConfig

PACKET_QUEUE = 300


class Picamera2Source(Source):
    encodes_h264 = True

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.packets: queue.Queue[tuple[bytes, bool, int]] = queue.Queue(PACKET_QUEUE)
        self.annotate: Callable[[np.ndarray], None] | None = None
        self._cam: Any = None

    def open(self) -> None:
        try:
            from libcamera import Transform
            from picamera2 import MappedArray, Picamera2
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import Output
        except ImportError as exc:
            raise SourceError(f"picamera2 is not available ({exc}); on Raspberry Pi OS: "
                              "sudo apt install python3-picamera2 and a venv made with "
                              "--system-site-packages") from None
        c = self.config
        packets = self.packets

        class BusOutput(Output):  # type: ignore[misc]
            def outputframe(self, frame: Any, keyframe: bool = True, timestamp: Any = None,
                            packet: Any = None, audio: bool = False) -> None:
                try:
                    packets.put_nowait((bytes(frame), bool(keyframe), int(timestamp or 0)))
                except queue.Full:
                    pass  # the capture thread is stuck; dropping beats blocking the encoder

        try:
            cam = Picamera2()
            # Unset size or rate: picamera2's default video mode.
            main = {"format": "RGB888", **({"size": (c.width, c.height)} if c.width else {})}
            video_config = cam.create_video_configuration(
                main=main, lores={"format": "YUV420"},
                transform=Transform(hflip=c.hflip ^ (c.rotation == 180),
                                    vflip=c.vflip ^ (c.rotation == 180)),
                controls={"FrameRate": c.fps} if c.fps else {})
            width, height = video_config["main"]["size"]
            self.size = (int(width), int(height))
            # The ISP's lores keeps the main stream's aspect ratio.
            video_config["lores"]["size"] = fit(*self.size, c.lores_width, c.lores_height)
            frame_us = video_config["controls"].get("FrameDurationLimits", (33333,))[0]
            self.fps = c.fps or round(1e6 / frame_us, 2)
            cam.configure(video_config)

            def draw(request: Any) -> None:
                if self.annotate is not None:
                    with MappedArray(request, "main") as m:
                        self.annotate(m.array)

            cam.pre_callback = draw
            encoder = H264Encoder(bitrate=c.bitrate, repeat=True,
                                  iperiod=max(1, round(self.fps * c.keyframe_interval)))
            cam.start_recording(encoder, BusOutput())
        except Exception as exc:  # noqa: BLE001 - libcamera fails in many ways
            raise SourceError(f"Pi camera: {exc}") from None
        self._cam = cam

    def read(self) -> Captured:
        try:
            request = self._cam.capture_request()
        except Exception as exc:  # noqa: BLE001 - any camera failure means reopen
            raise SourceError(f"Pi camera: {exc}") from None
        try:
            main = request.make_array("main").copy()  # buffers are recycled: copy
            lores = request.make_array("lores").copy()
            sensor_ns = request.get_metadata().get("SensorTimestamp", time.monotonic_ns())
        finally:
            request.release()
        return Captured(main, time.time(), int(sensor_ns) // 1000, lores_yuv=lores)

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop_recording()
            finally:
                self._cam.close()
                self._cam = None
