"""The capture service: one camera in, three streams out.

    frames endpoint  frame/lores/  small grey or YUV420 for detection (not
                                   annotated, so the clock never looks like motion)
                     frame/live/   for the live view, at live_fps: the camera's
                                   own JPEG when it sends JPEGs, else BGR
    video endpoint   h264/         the annotated main stream, one access unit
                                   per message, SPS/PPS before each keyframe

A camera that sends JPEGs (MJPEG over HTTP, a webcam in MJPEG mode) is
decoded only as far as needed: detection's frame straight from the JPEG at a
half, quarter or eighth of its size, in grey; the full picture only while
someone subscribes to h264 (the recorder, an h264 live viewer). The software
encoder runs only then, and starts on a keyframe. ``capture.fps`` caps the
rate processed from a faster camera; the keyframe interval follows the rate
actually processed.

Such a camera's pre-roll is kept here, as its own JPEGs (``preroll``), and
told to the recorder (``VideoSupply``), which then subscribes to h264 only
while it writes a clip. Each new h264 subscription restarts the encoder on
the pre-roll: its frames go out first (``replay``, from a keyframe), encoded
a few at a time between live frames so detection never waits, then the live
frames, the first one a keyframe, so a subscriber that was already there
drops the replay and goes on without a hole.

Any other camera, while a recorder is configured, has its encoder (ours, or
the Pi camera's own) run all the time and its pre-roll kept as h264 GOPs
(``h264ring``): a new subscriber gets them first (``replay``, in bursts a
subscriber's queue holds), then live from a keyframe made at once. A
recorder restarted mid-event gets the seconds it was down from that ring
(``RESTART_SECONDS`` are kept for it); from the JPEG ring only as far as
its ``PREROLL_SLACK`` reaches.

Frames come from a ``SourceReader`` thread through an ``Inbox`` the worker
loop waits on (``wait_on``), so each frame goes out as soon as it is read;
this thread does everything that touches sockets. Every buffer handed to the
bus is freshly made for it and never written again (zero-copy send).
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

import cv2

from common.bus import Message, Publisher
from common.gopring import Packet
from common.messages import Brightness, Frame, LiveFrame, SelfTest, VideoPacket, VideoSupply
from common.worker import SetupError, Worker
from services.capture import frames as pictures
from services.capture import jpeg as jpegs
from services.capture.encoder import H264Encoder
from services.capture.h264ring import H264Ring
from services.capture.passerby import PasserBy
from services.capture.preroll import JpegRing, Shot
from services.capture.reader import SourceReader
from services.capture.sources import (
    SYNTHETIC_FPS,
    Captured,
    RateLimit,
    Source,
    SourceError,
    make_source,
)

log = logging.getLogger(__name__)

BRIGHTNESS_STALE_SECONDS = 10.0
# Sources whose failure at start is a configuration problem, not an outage.
FATAL_AT_START = ("synthetic", "file")
# Detect's lag behind the video, kept on top of record.rec_sec_before (as the
# recorder's own ring does).
PREROLL_SLACK = 2.0
# Encoding the pre-roll for a new subscriber: at most this long at a time,
# so live frames (detection's) are never held up by more.
CATCH_UP_SECONDS = 0.01
# A camera whose h264 is kept here as h264 (``h264ring``) keeps this much more:
# a recorder restarted mid-event (supervisord respawns it, its start takes
# 0.6-2.4 s to the first packet, bench/notes.md) gets the seconds it was down
# too. At 2 Mbit/s 5 s are 1.25 MB.
RESTART_SECONDS = 5.0
# A replay goes out this share of the subscriber's queue (bus.video_hwm) at a
# time, REPLAY_PAUSE apart: what does not fit a PUB socket's queue is dropped.
REPLAY_BURST_SHARE = 4
REPLAY_PAUSE = 0.05
SUPPLY_PERIOD = 1.0
FPS_WINDOW_SECONDS = 2.0  # the processed rate is measured over this long


class CaptureService(Worker):
    name = "capture"

    def setup(self) -> None:
        c = self.config.capture
        self.frames_pub: Publisher = self.bus.publisher("frames")
        self.video_pub: Publisher = self.bus.publisher("video", track_subscribers=True)
        self.subscribe(["ir"], [Brightness.TOPIC], hwm=10)
        self.subscribe(["notify"], [SelfTest.TOPIC], hwm=10)
        self.passer = PasserBy()
        self._stamp = pictures.Stamp()
        self._yuv: jpegs.YuvDecoder | None = None  # made when h264 is wanted: it loads PyAV
        try:
            self.source: Source = make_source(c)
            self.source.open()
            opened = True
        except SourceError as exc:
            if c.source in FATAL_AT_START:
                raise SetupError(f"capture.source={c.source}: {exc}") from None
            log.warning("%s source not ready (%s); will keep trying", c.source, exc)
            opened = False
        self._exit_code = 0
        self._checked_size: tuple[int, int] | None = None  # the camera's, as last checked
        if opened and self.source.size is not None and not self.source.encodes_h264:
            self._check_size(*self.source.size)  # else at the first frame
        self.encoder: H264Encoder | None = None  # while someone subscribes to h264
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
        self._skipped = 0  # frames over capture.fps
        self._bad_jpegs = 0
        # Unset capture.fps: every frame the camera sends.
        self._rate = RateLimit(c.fps) if c.fps else None
        self._lores_rate = RateLimit(c.lores_fps) if c.lores_fps else None
        self._lores_skipped = 0  # camera frames since the last lores one (Frame.skipped)
        self._gray_scale: tuple[tuple[int, int], int] | None = None  # (JPEG size, DCT scale)
        self._sized: tuple[bytes | None, tuple[int, int]] = (None, (0, 0))  # (JPEG, its size)
        r = self.config.record
        # Made at the first JPEG: only a camera that sends JPEGs has a pre-roll here,
        # and only for a recorder (seconds of JPEGs: 7.5 MB at 640x480 @30). Without
        # one, VideoSupply says 0 and a recorder that comes anyway keeps its own.
        self.preroll: JpegRing | None = None
        self._keep_preroll = "record" in self.config.general.services
        self._preroll_args = (r.rec_sec_before + PREROLL_SLACK,
                              int(r.preroll_max_mb * 1024 * 1024))
        # A camera whose h264 is made all the time (its own, or ours while a
        # recorder is configured): the pre-roll as h264, made at the first frame.
        self.h264ring: H264Ring | None = None
        self._h264ring_args = (r.rec_sec_before + PREROLL_SLACK + RESTART_SECONDS,
                               int(r.preroll_max_mb * 1024 * 1024))
        self._burst = max(10, self.config.bus.video_hwm // REPLAY_BURST_SHARE)
        self._encoded_pts = -1  # the pre-roll's frames after this are still to encode
        self._replay_until = -1  # frames up to this pts are a replay for a new subscriber
        self._key_after: int | None = None  # the first frame after this pts: a keyframe
        self._replays = 0
        self._next_supply = 0.0
        self._h264_wanted = False  # as of the last frame

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
        if now >= self._next_supply:
            self._next_supply = now + SUPPLY_PERIOD
            kept = self.preroll or self.h264ring
            self.video_pub.publish(VideoSupply, ts=now, encoding=self.encoder is not None,
                                   preroll=kept.seconds if kept else 0.0)
        if self._h264_wanted and self._catch_up(CATCH_UP_SECONDS):
            return 0.0  # more pre-roll to encode: straight back after any live frame
        if self.h264ring is not None and self._send_h264():
            return REPLAY_PAUSE  # a replay under way: the rest after a pause
        # A camera that encodes h264 itself hands its packets over a queue:
        # look again soon rather than at the default wait.
        return 0.02 if getattr(self.source, "packets", None) is not None else None

    def _check_size(self, width: int, height: int) -> None:
        """Refuse a main stream size larger than the camera's (``width`` x
        ``height`` as it comes, before turning)."""
        self._checked_size = (width, height)
        c = self.config.capture
        turned = (width, height) if c.rotation in (0, 180) else (height, width)
        why = pictures.too_large(*turned, c)
        if why:
            raise SetupError(why)

    def _size_ok(self, cap: Captured) -> bool:
        """The size check again whenever the camera's size is new (a camera
        that was not there at start, or came back from a reconnect in
        another mode); False when it failed (the service then stops, as at a
        failed start)."""
        try:
            size = self._jpeg_size(cap.jpeg) if cap.jpeg is not None else \
                (cap.picture().shape[1], cap.picture().shape[0])
        except jpegs.JpegError:
            return False  # a broken frame: the next one tells
        if size == self._checked_size:
            return True
        try:
            self._check_size(*size)
        except SetupError as exc:
            log.error("%s cannot start: %s", self.name, exc)
            self._exit_code = 2  # a setup error: supervisord does not restart it
            self.stop_requested = True
            return False
        return True

    def serve(self) -> int:
        code = super().serve()
        return self._exit_code or code

    def _publish(self, cap: Captured) -> None:
        c = self.config.capture
        if self.stop_requested:
            return
        if not self.source.encodes_h264 and not self._size_ok(cap):
            return
        if self._rate is not None and not self._rate.take(cap.ts):
            self._skipped += 1
            return
        main = None
        if cap.jpeg is None and self._keep_preroll and self.h264ring is None \
                and self.preroll is None:
            self.h264ring = H264Ring(*self._h264ring_args)
        encoding = self._encoding()
        if cap.jpeg is not None and self._keep_preroll:
            if self.preroll is None:
                self.preroll = JpegRing(*self._preroll_args)
            self.preroll.add(Shot(cap.jpeg, cap.ts, cap.pts_us))
        # This frame is encoded now unless the pre-roll is still being encoded
        # for a new subscriber (then tick gets to it, in order).
        live = encoding and not (self.preroll and self.preroll.newer_than(
            self._encoded_pts, 2)[:-1])
        self._lores_skipped += 1  # until it is sent (a JPEG that fails to decode is not)
        try:
            if self._lores_rate is None or self._lores_rate.take(cap.ts):
                # A camera JPEG's lores is its grey DCT-domain decode whether or
                # not h264 is made too: detection sees the same picture with or
                # without a recorder (from the decoded picture, resized, the
                # highway onset after an event came 2-3 frames later), at 1.1 ms
                # a frame more while recording. The self-test's passer-by is
                # drawn into decoded pixels: from those then.
                main = self._publish_lores(cap, self.passer.walking(cap.ts))
            if live:
                main = self._main_for_h264(cap) if main is None else main
                self._encode(main, cap.ts, cap.pts_us)
            if cap.ts >= self._next_live:
                self._next_live = max(self._next_live + 1.0 / c.live_fps, cap.ts)
                # The camera's own JPEG while recording too: the live view is the
                # same with or without a recorder, and costs nothing.
                if cap.jpeg is not None and not self.passer.walking(cap.ts) and \
                        not pictures.turned(c):
                    self._publish_live_jpeg(cap.jpeg, cap.ts)
                else:
                    if main is None or main.ndim == 2:  # none yet, or I420: BGR for this
                        main = self._main(cap)
                    live = cv2.resize(main, (c.live_width, c.live_height))
                    self.frames_pub.publish(LiveFrame, [live], ts=cap.ts, width=c.live_width,
                                            height=c.live_height, format="bgr24")
        except jpegs.JpegError as exc:
            self._bad_jpegs += 1
            if self._bad_jpegs == 1 or self._bad_jpegs % 1000 == 0:
                log.warning("dropped a frame from the camera (%s); %d so far", exc,
                            self._bad_jpegs)
            return
        self._frames += 1
        self._fps_window.append(cap.ts)
        while self._fps_window[-1] - self._fps_window[0] > FPS_WINDOW_SECONDS:
            del self._fps_window[0]

    def _publish_lores(self, cap: Captured, full: bool) -> Any:
        """Detection's frame (from the full picture when ``full``); returns
        the main picture if it had to be made."""
        c = self.config.capture
        main = None
        if cap.lores_yuv is not None:
            lores, fmt = cap.lores_yuv, "yuv420"
        elif cap.jpeg is not None and not full:
            lores, fmt = pictures.to_lores_gray(self._gray(cap.jpeg), c), "gray"
        elif cap.jpeg is not None:  # decoded anyway: the same grey as the JPEG's own
            main = self._main_for_h264(cap)
            luma = main[:main.shape[0] * 2 // 3] if main.ndim == 2 else main
            lores, fmt = pictures.to_lores_gray_from(luma, c.lores_width, c.lores_height), "gray"
        else:  # the full picture is decoded anyway: lores from it
            main = self._main(cap)
            lores, fmt = pictures.to_i420(main, c.lores_width, c.lores_height), "yuv420"
        height = lores.shape[0] * 2 // 3 if fmt == "yuv420" else lores.shape[0]
        self.frames_pub.publish(Frame, [lores], ts=cap.ts, width=lores.shape[1], height=height,
                                format=fmt, skipped=self._lores_skipped - 1)
        self._lores_skipped = 0
        return main

    def _main_for_h264(self, cap: Captured) -> Any:
        """The main picture as the encoder takes it: a camera JPEG that needs
        no turning or scaling decoded straight to I420 in its own YCbCr (no
        BGR at all), anything else in BGR (``_main``)."""
        if cap.jpeg is None or not self._yuv_fits(cap.jpeg):
            return self._main(cap)
        if self._yuv is None:
            self._yuv = jpegs.YuvDecoder()
        i420 = self._yuv.decode(cap.jpeg)
        self.passer.draw(i420[:i420.shape[0] * 2 // 3], cap.ts)  # into the luma
        return i420

    def _yuv_fits(self, jpeg: bytes) -> bool:
        c = self.config.capture
        if pictures.turned(c):
            return False
        if c.width is None:
            return True
        size = self._jpeg_size(jpeg)
        return pictures.fit(*size, c.width, c.height) == size

    def _main(self, cap: Captured) -> Any:
        """The main stream picture (decoded, turned and sized), fresh for the
        bus: the timestamp is burned into it when it is encoded."""
        if self.source.encodes_h264:
            main = cap.picture()
            self.passer.draw(main, cap.ts)
            return main
        main = pictures.orient(cap.picture(), self.config.capture)
        self.passer.draw(main, cap.ts)
        return main

    def _gray(self, jpeg: bytes) -> Any:
        """The JPEG's luma at the smallest DCT scale that still covers the
        lores size (the scale is worked out once per camera size)."""
        size = self._jpeg_size(jpeg)
        if self._gray_scale is None or self._gray_scale[0] != size:
            c = self.config.capture
            w, h = size if c.rotation in (0, 180) else size[::-1]
            lw, lh = pictures.fit(w, h, c.lores_width, c.lores_height)
            if c.rotation not in (0, 180):
                lw, lh = lh, lw
            self._gray_scale = (size, jpegs.reduction(size[0], size[1], lw, lh))
        return jpegs.decode_gray(jpeg, self._gray_scale[1])

    def _jpeg_size(self, jpeg: bytes) -> tuple[int, int]:
        """``jpegs.jpeg_size``, parsed once per frame though several steps ask."""
        if self._sized[0] is not jpeg:  # the JPEG is held here: its id is not reused
            self._sized = (jpeg, jpegs.jpeg_size(jpeg))
        return self._sized[1]

    def _encoding(self) -> bool:
        """Whether anyone subscribes to h264; the encoder stops when nobody
        does, and starts over on the pre-roll when someone new does."""
        if self.source.encodes_h264:
            return False
        self._h264_wanted, joined = self.video_pub.interest(VideoPacket.TOPIC)
        if self.h264ring is not None:  # the encoder runs for the ring
            if joined:
                self._replay_h264()
            return True
        if self._h264_wanted:
            if joined:
                self._restart_for_newcomer()
            return True
        if self.encoder is not None:
            log.info("nobody subscribes to h264: encoder stopped")
            self.encoder = None
        return False

    def _restart_for_newcomer(self) -> None:
        newest = self.preroll.newest if self.preroll else None
        if newest is None:  # no pre-roll here: the newcomer starts at a keyframe made now
            if self.encoder is not None:  # (a new encoder's first frame is one anyway)
                self._key_after = self._encoded_pts
            return
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None  # made afresh at the pre-roll's first frame: a keyframe
        self._encoded_pts = -1
        self._replay_until = self._key_after = newest.pts_us
        self._replays += 1
        log.info("h264 subscriber joined: %.1f s of pre-roll (%d frames) first",
                 self.preroll.span, len(self.preroll))

    def _replay_h264(self) -> None:
        """A new h264 subscriber: the ring first, then live from a keyframe
        made at once, so one that was there already (it drops the replay)
        does not wait a keyframe interval either."""
        assert self.h264ring is not None
        if not self.h264ring.join():
            if self.encoder is not None:
                self._key_after = self._encoded_pts
            return
        self._key_after = self.h264ring.replay_until
        self._replays += 1
        log.info("h264 subscriber joined: %.1f s of h264 pre-roll (%d bytes) first",
                 self.h264ring.ring.span, self.h264ring.ring.bytes)

    def _send_h264(self) -> bool:
        """Send what the h264 ring has not sent yet (a replay ``_burst``
        units at a time); whether more waits. Nothing goes out while nobody
        subscribes."""
        ring = self.h264ring
        assert ring is not None
        for pkt in ring.due(self._burst):
            if self._h264_wanted:
                self.video_pub.publish(VideoPacket, [pkt.data], ts=pkt.ts, pts=pkt.pts,
                                       keyframe=pkt.keyframe, width=pkt.width,
                                       height=pkt.height, fps=pkt.fps,
                                       replay=ring.is_replay(pkt))
        return ring.pending

    def _catch_up(self, budget: float) -> bool:
        """Encode pre-roll frames still waiting, for about ``budget``
        seconds (one at least); whether some still wait."""
        if self.preroll is None:
            return False
        deadline = time.perf_counter() + budget
        while True:
            waiting = self.preroll.newer_than(self._encoded_pts, 2)
            if not waiting:
                return False
            shot = waiting[0]
            try:
                main = self._main_for_h264(Captured(None, shot.ts, shot.pts_us, jpeg=shot.jpeg))
            except jpegs.JpegError:
                self._encoded_pts = shot.pts_us  # counted when it came in live
                continue
            self._encode(main, shot.ts, shot.pts_us)
            if len(waiting) == 1:
                return False
            if time.perf_counter() >= deadline:
                return True

    def _encode(self, main: Any, ts: float, pts_us: int) -> None:
        """Encode ``main``: BGR (h x w x 3), or a JPEG's full-range I420 (2-D)."""
        c = self.config.capture
        i420 = main.ndim == 2
        height, width = (main.shape[0] * 2 // 3, main.shape[1]) if i420 else main.shape[:2]
        if self.encoder is None or (self.encoder.width, self.encoder.height,
                                    self.encoder.full_range) != (width, height, i420):
            self.encoder = H264Encoder(width, height, self._processed_fps(), c.keyframe_interval,
                                       c.bitrate, full_range=i420)
            log.info("h264 encoder started: %dx%d at %.1f fps", width, height, self.encoder.fps)
        key = self._key_after is not None and pts_us > self._key_after
        if key:
            self._key_after = None
        self._annotate_in_place(main, ts)
        started = time.perf_counter()
        encode = self.encoder.encode_i420 if i420 else self.encoder.encode
        units = encode(main, pts_us, keyframe=key)
        self._encode_ms = 0.9 * self._encode_ms + 100 * (time.perf_counter() - started)
        self._encoded_pts = pts_us
        if self.h264ring is not None:
            for unit, keyframe in units:
                self.h264ring.add(Packet(unit, pts_us, ts, keyframe, width, height,
                                         self.encoder.fps))
            self._send_h264()
            return
        for unit, keyframe in units:
            self.video_pub.publish(VideoPacket, [unit], ts=ts, pts=pts_us, keyframe=keyframe,
                                   width=width, height=height, fps=self.encoder.fps,
                                   replay=pts_us <= self._replay_until)

    def _publish_live_jpeg(self, jpeg: bytes, ts: float) -> None:
        """The camera's own JPEG as the live frame: no decode, no encode."""
        width, height = self._jpeg_size(jpeg)
        self.frames_pub.publish(LiveFrame, [jpeg], ts=ts, width=width, height=height,
                                format="jpeg")

    def _processed_fps(self) -> float:
        """The rate frames are really processed at (the configured one until
        a second of frames has been seen): what the keyframe interval counts."""
        window = self._fps_window
        cap = self.config.capture.fps
        if len(window) > 2 and window[-1] - window[0] >= 1.0:
            measured = (len(window) - 1) / (window[-1] - window[0])
            return round(min(cap, measured) if cap else measured, 2)
        return cap or self.source.fps or SYNTHETIC_FPS

    def _publish_camera_packets(self) -> None:
        """h264 the Pi camera encoded itself (its queue is empty otherwise)."""
        packets = getattr(self.source, "packets", None)
        if packets is None:
            return
        width, height = self.source.size or (0, 0)
        fps = self.source.fps or SYNTHETIC_FPS
        offset = time.time() - time.monotonic()
        self._h264_wanted, joined = self.video_pub.interest(VideoPacket.TOPIC)
        if self._keep_preroll and self.h264ring is None:
            self.h264ring = H264Ring(*self._h264ring_args)
        if joined and self.h264ring is not None:
            # The camera's encoder is not asked for a keyframe: the live units
            # go on in the GOP the replay ends in, which a subscriber that
            # was there already has too.
            self.h264ring.join()
            self._replays += 1
        while True:
            try:
                unit, keyframe, pts_us = packets.get_nowait()
            except queue.Empty:
                break
            ts = offset + pts_us / 1e6
            if self.h264ring is not None:
                self.h264ring.add(Packet(unit, pts_us, ts, keyframe, width, height, fps))
                continue
            self.video_pub.publish(VideoPacket, [unit], ts=ts, pts=pts_us,
                                   keyframe=keyframe, width=width, height=height, fps=fps)
        if self.h264ring is not None:
            self._send_h264()

    def _annotate_in_place(self, img: Any, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        fresh = ts - self._brightness_at < BRIGHTNESS_STALE_SECONDS
        stamp = self._stamp.on_i420 if img.ndim == 2 else self._stamp
        stamp(img, pictures.annotation_text(
            self.config.capture, ts, self.brightness if fresh else None))

    def status_counters(self) -> dict[str, Any]:
        window = self._fps_window
        fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and \
            window[-1] > window[0] else 0.0
        kept = self.preroll or (self.h264ring.ring if self.h264ring else None)
        self.degraded = "" if self.reader.state == "streaming" else \
            f"source {self.reader.state}: {self.reader.last_error}"
        return {"frames": self._frames, "fps": round(fps, 2), "source": self.reader.state,
                "reconnects": self.reader.reconnects, "stale": self.reader.frames.replaced,
                "skipped": self._skipped, "bad_jpegs": self._bad_jpegs,
                "encoding": self.encoder is not None, "encode_ms": round(self._encode_ms, 2),
                "preroll_s": round(kept.span, 1) if kept else 0.0,
                "preroll_bytes": kept.bytes if kept else 0,
                "replays": self._replays}

    def drain(self) -> None:
        if self.encoder is not None:
            self.encoder.close()

    def teardown(self) -> None:
        if hasattr(self, "reader"):
            self.reader.stop()
