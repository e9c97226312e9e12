"""The capture service: one camera in, three streams out.

    frames endpoint  frame/lores/  small YUV420 for detection (not annotated,
                                   so the clock never looks like motion)
                     frame/live/   BGR for the live view, at live_fps
    video endpoint   h264/         the annotated main stream, one access unit
                                   per message, SPS/PPS before each keyframe

Frames come from a ``SourceReader`` thread through an ``Inbox`` the worker
loop waits on (``wait_on``), so each frame goes out as soon as it is read;
this thread does everything that touches sockets. Every buffer handed to the bus is freshly made for it and
never written again (zero-copy send).
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

import cv2

from common.bus import Message, Publisher
from common.messages import Brightness, Frame, LiveFrame, SelfTest, VideoPacket
from common.worker import SetupError, Worker
from services.capture import frames as pictures
from services.capture.encoder import H264Encoder
from services.capture.passerby import PasserBy
from services.capture.reader import SourceReader
from services.capture.sources import Captured, Source, SourceError, make_source

log = logging.getLogger(__name__)

BRIGHTNESS_STALE_SECONDS = 10.0
# Sources whose failure at start is a configuration problem, not an outage.
FATAL_AT_START = ("synthetic", "file")


class CaptureService(Worker):
    name = "capture"

    def setup(self) -> None:
        c = self.config.capture
        self.frames_pub: Publisher = self.bus.publisher("frames")
        self.video_pub: Publisher = self.bus.publisher("video")
        self.subscribe(["ir"], [Brightness.TOPIC], hwm=10)
        self.subscribe(["notify"], [SelfTest.TOPIC], hwm=10)
        self.passer = PasserBy()
        try:
            self.source: Source = make_source(c)
            self.source.open()
            opened = True
        except SourceError as exc:
            if c.source in FATAL_AT_START:
                raise SetupError(f"capture.source={c.source}: {exc}") from None
            log.warning("%s source not ready (%s); will keep trying", c.source, exc)
            opened = False
        self.encoder = None if self.source.encodes_h264 else H264Encoder(
            c.width, c.height, c.fps, c.keyframe_interval, c.bitrate)
        if self.source.encodes_h264:
            self.source.annotate = self._annotate_in_place  # type: ignore[attr-defined]
        self.reader = SourceReader(self.source, c.reconnect_max_seconds, opened=opened)
        self.wait_on(self.reader.frames, self._publish)
        self.reader.start()
        self.brightness: float | None = None
        self._brightness_at = 0.0
        self._next_live = 0.0
        self._fps_window: list[float] = []
        self._encode_ms = 0.0
        self._frames = 0

    def handle(self, msg: Message) -> None:
        if isinstance(msg.header, SelfTest) and msg.header.run_id:
            log.info("self-test %s: a passer-by for %.0f s", msg.header.run_id,
                     msg.header.seconds)
            self.passer.walk(self.clock(), msg.header.seconds)
        elif isinstance(msg.header, Brightness) and msg.header.connected:
            self.brightness = msg.header.level
            self._brightness_at = msg.header.ts

    def tick(self, now: float) -> float | None:
        self._publish_camera_packets()
        # A camera that encodes h264 itself hands its packets over a queue:
        # look again soon rather than at the default wait.
        return 0.02 if getattr(self.source, "packets", None) is not None else None

    def _publish(self, cap: Captured) -> None:
        c = self.config.capture
        main = cap.bgr if self.source.encodes_h264 else pictures.orient(cap.bgr, c)
        self.passer.draw(main, cap.ts)
        lores = cap.lores_yuv if cap.lores_yuv is not None else pictures.to_i420(
            main, c.lores_width, c.lores_height)
        height = lores.shape[0] * 2 // 3
        self.frames_pub.publish(Frame, [lores], ts=cap.ts, width=lores.shape[1],
                                height=height, format="yuv420")
        if self.encoder is not None:
            self._annotate_in_place(main, cap.ts)
            started = time.perf_counter()
            units = self.encoder.encode(main, cap.pts_us)
            self._encode_ms = 0.9 * self._encode_ms + 100 * (time.perf_counter() - started)
            for unit, keyframe in units:
                self.video_pub.publish(VideoPacket, [unit], ts=cap.ts, pts=cap.pts_us,
                                       keyframe=keyframe, width=c.width, height=c.height,
                                       fps=c.fps)
        if cap.ts >= self._next_live:
            self._next_live = max(self._next_live + 1.0 / c.live_fps, cap.ts)
            live = cv2.resize(main, (c.live_width, c.live_height))
            self.frames_pub.publish(LiveFrame, [live], ts=cap.ts, width=c.live_width,
                                    height=c.live_height, format="bgr24")
        self._frames += 1
        self._fps_window.append(cap.ts)
        if len(self._fps_window) > 2 * c.fps:
            del self._fps_window[0]

    def _publish_camera_packets(self) -> None:
        """h264 the Pi camera encoded itself (its queue is empty otherwise)."""
        packets = getattr(self.source, "packets", None)
        if packets is None:
            return
        c = self.config.capture
        offset = time.time() - time.monotonic()
        while True:
            try:
                unit, keyframe, pts_us = packets.get_nowait()
            except queue.Empty:
                return
            self.video_pub.publish(VideoPacket, [unit], ts=offset + pts_us / 1e6, pts=pts_us,
                                   keyframe=keyframe, width=c.width, height=c.height, fps=c.fps)

    def _annotate_in_place(self, img: Any, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        fresh = ts - self._brightness_at < BRIGHTNESS_STALE_SECONDS
        pictures.annotate(img, pictures.annotation_text(
            self.config.capture, ts, self.brightness if fresh else None))

    def status_counters(self) -> dict[str, Any]:
        window = self._fps_window
        fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and \
            window[-1] > window[0] else 0.0
        self.degraded = "" if self.reader.state == "streaming" else \
            f"source {self.reader.state}: {self.reader.last_error}"
        return {"frames": self._frames, "fps": round(fps, 2), "source": self.reader.state,
                "reconnects": self.reader.reconnects, "stale": self.reader.frames.replaced,
                "encode_ms": round(self._encode_ms, 2)}

    def drain(self) -> None:
        if self.encoder is not None:
            self.encoder.close()

    def teardown(self) -> None:
        if hasattr(self, "reader"):
            self.reader.stop()
