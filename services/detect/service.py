"""The detect service: lores frames in, motion events and snapshots out.

Subscribes to ``frame/lores/`` (newest only: a late frame is worth nothing to
a detector) and ``frame/live/`` on endpoint "frames", ``brightness/`` (and
``pir/`` with ``detect.pir``, see ``services.detect.pir_vote``) on "ir",
``state/`` from "notify" (the arm state's owner): disarmed, it watches nothing
(no events, hence no event clips or alerts) until armed again; ``Tune`` and
``Overlay`` commands from "web" (the motion tuner: sensitivity used from the
next frame, and a wish for overlays). Publishes ``motion/`` and ``snapshot/``
(and ``overlay/`` while a tuner asks) on its own endpoint "detect". All decisions are made by
``services.detect.pipeline.Detector``, the same code that replay runs; this
shell only decodes frames, keeps the best picture for snapshots and sends.

A ``Motion`` carries the capture ts of the frame that caused it, so latency
is measurable end to end. Snapshot payloads are fresh ``bytes`` from the JPEG
encoder, handed to the bus and never touched again.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from common.arming import ArmingStore
from common.bus import Message
from common.config_view import ConfigView
from common.messages import (
    TUNING_LIMITS,
    ArmState,
    Brightness,
    Frame,
    LiveFrame,
    Motion,
    MotionOverlay,
    Notice,
    OpenEvent,
    Overlay,
    PirMotion,
    SelfTest,
    Snapshot,
    Tune,
)
from common.worker import SetupError, Worker
from services.detect.confirm import Confirmer, make_confirmer
from services.detect.events import EventChange
from services.detect.pipeline import Detector, FrameResult
from services.detect.pir_vote import PirVote
from services.detect.profiles import DAY, NIGHT, Active, ProfileSwitch, is_night, profile_config
from services.detect.rate import MAX_RATIO
from services.detect.regions import Regions
from services.detect.snapshot import annotate, encode_jpeg, lores_to_bgr
from services.detect.tamper import Finding

log = logging.getLogger(__name__)

BYTES_PER_PIXEL = {"gray": 1.0, "yuv420": 1.5, "bgr24": 3.0}
LIVE_MAX_AGE = 1.0  # seconds: an older live frame no longer shows the event
TICK_PERIOD = 0.1  # seconds: what tick watches (the hour, a silent camera) needs no finer
OPEN_EVENT_PERIOD = 1.0  # seconds between OpenEvent repeats, for a recorder that restarted


class BadFrame(ValueError):
    pass


def frame_pixels(header: Frame, payload: list[memoryview]) -> np.ndarray:
    """The frame's pixel buffer (1-D uint8, zero-copy), or ``BadFrame``."""
    per = BYTES_PER_PIXEL.get(header.format)
    if per is None:
        raise BadFrame(f"unknown pixel format {header.format!r}")
    if header.width <= 0 or header.height <= 0 or (header.format == "yuv420"
                                                   and header.height % 2):
        raise BadFrame(f"bad size {header.width}x{header.height} for {header.format}")
    if not 0 <= header.skipped < MAX_RATIO:
        raise BadFrame(f"skipped={header.skipped}: capture skips 0 to {MAX_RATIO - 1} camera "
                       "frames between two")
    want = int(header.width * header.height * per)
    got = sum(len(p) for p in payload)
    if len(payload) != 1 or got != want:
        raise BadFrame(f"{header.width}x{header.height} {header.format} needs {want} bytes in "
                       f"one part, got {got} in {len(payload)}")
    return np.frombuffer(payload[0], np.uint8)


class DetectService(Worker):
    name = "detect"

    def setup(self) -> None:
        cv2.setNumThreads(1)  # one core for detection; the rest of the Pi records and encodes
        self.cfg = self.config.detect
        try:
            self.detector = Detector(self.cfg)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        self.subscribe(["frames"], [Frame.TOPIC, LiveFrame.TOPIC], latest_only=True)
        self.subscribe(["ir"], [Brightness.TOPIC])
        # brightness/ comes updates_per_sec times a second: a few missed is the ir service gone.
        self.ir_stale = max(3.0, 3.0 / self.config.ir.updates_per_sec)
        self.ir_heard = 0.0  # when the last brightness/ came (with ir_level)
        self.pir_vote = PirVote(self.cfg.pir, self.cfg.pir_window_seconds,
                                stale=self.ir_stale, started=self.clock())
        if self.cfg.pir != "never":
            self.subscribe(["ir"], [PirMotion.TOPIC])
        self.subscribe(["notify"], [ArmState.TOPIC, SelfTest.TOPIC])
        self.test_until = 0.0  # a self-test's passer-by may start an event until then
        self.test_run = ""
        self.test_events: dict[str, str] = {}  # event id -> the self-test run it is
        self.subscribe(["web"], [Tune.TOPIC, Overlay.TOPIC])
        self.overlay_until = float("-inf")  # the motion tuner's overlay is wanted until then
        self.live: tuple[float, np.ndarray | memoryview] | None = None  # pixels, or a JPEG
        self.lores: tuple[Frame, np.ndarray] | None = None
        self._last_lores_seq: int | None = None
        self.ir_level: float | None = None
        # Disarmed means not watching at all (not merely silent): no events, no clips.
        self.paused = not ArmingStore(self.home).load().armed
        self.last_frame_wall = self.clock()
        # frames: lores frames analysed; camera_frames: the camera frames they stand for
        self.stats: dict[str, Any] = {"frames": 0, "camera_frames": 0, "bad_frames": 0,
                                      "events": 0, "snapshots": 0, "ir_rebases": 0,
                                      "ms_last": 0.0, "tunings": 0}
        self._bad_kinds: set[str] = set()
        self._next_tick = float("-inf")
        # The event whose start went out and whose end has not: told every
        # second (OpenEvent), so a recorder that was down at its start still
        # writes its clip.
        self.open_event: OpenEvent | None = None
        self.last_event = ("", 0.0, 0.0)  # the last that ended: id, start, end
        self._next_open_event = float("-inf")
        self._setup_profiles()

    def _setup_profiles(self) -> None:
        """Both profiles' settings, built now: a bad night mask or model fails
        the start, not the first night."""
        night = profile_config(self.cfg, NIGHT)
        self.profiles = {DAY: self.cfg, NIGHT: night}
        self.confirmers: dict[str, Confirmer | None] = {DAY: self.detector.confirmer,
                                                        NIGHT: self.detector.confirmer}
        try:
            Regions(night, (160, 120))
            if night.confirm != self.cfg.confirm:
                self.confirmers[NIGHT] = make_confirmer(night.confirm)
        except ValueError as exc:  # its words name the day's key
            raise SetupError(str(exc).replace("detect.", "detect.night.", 1)) from None
        self.switch = ProfileSwitch(self.cfg, self.clock())
        self.stats["profile_switches"] = 0
        if self.switch.active.name != DAY:
            self._use_profile(self.switch.active)

    def _follow_profile(self) -> None:
        """The profile the IR state or the clock asks for, from the next frame."""
        silent = self.ir_level is not None and self.clock() - self.ir_heard > self.ir_stale
        if silent:
            self.switch.ir_silent(self.ir_heard)
        active = self.switch.decide(self.clock(), None if self.ir_level is None or silent
                                    else self.detector.night)
        if active is not None:
            self._use_profile(active)

    def _use_profile(self, active: Active) -> None:
        self.detector.use_profile(self.profiles[active.name], self.confirmers[active.name])
        self.stats["profile_switches"] += 1
        d = self.detector
        log.info("%s profile (%s): min_pixel_delta_trigger=%d min_trigger_area=%g "
                 "frames_to_start=%d, %d masks", active.name, active.why, d.threshold,
                 d.min_trigger_area, d.frames_to_start, len(d.config.masks))

    def heartbeat_fields(self) -> dict[str, Any]:
        a = self.switch.active
        return {"profile": a.name, "profile_since": a.since, "profile_why": a.why}

    def status_counters(self) -> dict[str, Any]:
        return dict(self.stats, **self.pir_vote.counters, paused=self.paused,
                    event_open=self.detector.events.active)

    # -- messages ---------------------------------------------------------------
    def handle(self, msg: Message) -> None:
        h = msg.header
        if isinstance(h, LiveFrame):
            self._live(h, msg.payload)
        elif isinstance(h, Frame):
            self._frame(h, msg.payload)
        elif isinstance(h, Brightness):
            self._brightness(h)
        elif isinstance(h, PirMotion) and h.camera == self.camera:
            for change in self.pir_vote.pir(h.ts, h.active):
                self._send(change, None)
        elif isinstance(h, ArmState) and h.camera == self.camera:
            self._pause(not h.armed)
        elif isinstance(h, SelfTest) and h.run_id:
            # The passer-by is drawn for `seconds`; an event it starts a little
            # later (frames to start, a busy Pi) is still the test's.
            self.test_run, self.test_until = h.run_id, self.clock() + h.seconds + 5.0
            if self.paused:
                self.detector.rebase()  # disarmed: watch for the test only
        elif isinstance(h, Tune) and h.camera == self.camera:
            self._tune(h)
        elif isinstance(h, Overlay) and h.camera == self.camera:
            self.overlay_until = self.clock() + h.seconds

    def _bad(self, what: str, exc: Exception) -> None:
        self.stats["bad_frames"] += 1
        kind = f"{what}: {exc}"[:80]
        if kind not in self._bad_kinds and len(self._bad_kinds) < 20:
            self._bad_kinds.add(kind)
            log.warning("dropped a %s frame: %s", what, exc)

    def _live(self, h: LiveFrame, payload: list[memoryview]) -> None:
        if h.format == "jpeg" and len(payload) == 1:
            # The camera's JPEG: decoded only if a snapshot needs it.
            self.live = (h.ts, payload[0])
            return
        try:
            if h.format != "bgr24":
                raise BadFrame(f"live frames must be bgr24 or jpeg, got {h.format!r}")
            pixels = frame_pixels(h, payload)
        except BadFrame as exc:
            self._bad("live", exc)
            return
        # Keep a reference to the received buffer only: no copy per live frame.
        self.live = (h.ts, pixels.reshape(h.height, h.width, 3))

    def _frame(self, h: Frame, payload: list[memoryview]) -> None:
        try:
            pixels = frame_pixels(h, payload)
        except BadFrame as exc:
            self._bad("lores", exc)
            return
        self.last_frame_wall = self.clock()
        self.stats["frames"] += 1
        self.lores = (h, pixels)
        frames = self._camera_frames(h)
        self.stats["camera_frames"] += frames
        if self.detector.health is not None:
            self.detector.health.last_frame = h.ts  # frames come, paused or not
        if self.paused and self.clock() >= self.test_until and not self.test_events:
            return
        if h.format == "bgr24":
            luma = cv2.cvtColor(pixels.reshape(h.height, h.width, 3), cv2.COLOR_BGR2GRAY)
        else:  # gray, or I420 whose first `height` rows are the luma plane
            luma = pixels[: h.width * h.height].reshape(h.height, h.width)
        res = self.detector.process(luma, h.ts, image=lambda: self._picture(h.ts),
                                    frames=frames)
        self.stats["ms_last"] = round(res.ms, 3)
        for change in self.pir_vote.frame(self.clock(), h.ts, res.raw, res.changes):
            self._send(change, res.fg)
        for finding in res.health:
            self._notice(finding)
        if self.clock() < self.overlay_until:
            self._overlay(h.ts, res)

    def _camera_frames(self, h: Frame) -> int:
        """The camera frames this analysed one stands for: itself, those
        capture let go before it (``skipped``), and as many for each lores
        frame this reader never took (it fell behind and kept the newest, or
        the queue was full): a detector on a slow board keeps its timing."""
        last, self._last_lores_seq = self._last_lores_seq, h.seq
        # The first frame, or capture restarted (its seq began again): this frame alone.
        lores = h.seq - last if last is not None and h.seq > last else 1
        return min((h.skipped + 1) * lores, MAX_RATIO)

    def _brightness(self, h: Brightness) -> None:
        # The IR illuminator switching changes the whole picture in a way no
        # gain explains: re-base and look away for a few frames, no event.
        if self.ir_level is not None and abs(h.ir_level - self.ir_level) > 0.05:
            log.info("IR level %.2f -> %.2f: new background", self.ir_level, h.ir_level)
            self.detector.rebase(self.cfg.ir_settle_frames)
            self.stats["ir_rebases"] += 1
        self.ir_level = h.ir_level
        self.ir_heard = self.clock()
        # Night, for camera health's reference, the PIR vote and the detection profile.
        self.detector.night = is_night(h.ir_level)
        self.pir_vote.brightness(self.clock(), h.connected and h.pir, self.detector.night)
        self._follow_profile()  # after the re-base: a switch keeps its settle frames

    def _tune(self, h: Tune) -> None:
        """A tune is for one profile (the one in force if it does not say),
        and holds whenever that profile is in force until detect restarts."""
        name = h.profile or self.switch.active.name
        cfg = self.profiles[name]
        values = (h.threshold, h.min_area, h.frames_to_start)
        if values == (cfg.min_pixel_delta_trigger, cfg.min_trigger_area, cfg.frames_to_start):
            return  # the tuner repeats itself every few seconds
        self.profiles[name] = ConfigView({**dict(cfg), **dict(zip(TUNING_LIMITS, values,
                                                                 strict=True))})
        if name == self.switch.active.name:
            self.detector.tune(*values)
        self.stats["tunings"] += 1
        log.info("%s profile tuned by %s: min_pixel_delta_trigger=%d min_trigger_area=%g "
                 "frames_to_start=%d", name, h.source or "?", *values)

    def _overlay(self, ts: float, res: FrameResult) -> None:
        """This frame's moving pixels and blobs, for the tuner's picture."""
        assert self.pub is not None
        d = self.detector
        w, h = d.regions.size
        fg = res.fg if res.fg is not None else np.zeros((h, w), np.uint8)
        blobs = res.blobs
        self.pub.publish(MotionOverlay, [np.packbits(fg > 0).tobytes()], ts=ts,
                         width=fg.shape[1], height=fg.shape[0],
                         boxes=blobs.boxes if blobs else [],
                         area=round(blobs.area, 5) if blobs else 0.0, moving=res.raw,
                         event=d.events.active, min_pixel_delta_trigger=d.threshold,
                         min_trigger_area=d.min_trigger_area,
                         frames_to_start=d.frames_to_start, profile=self.switch.active.name)

    def _pause(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        log.info("detection %s", "paused" if paused else "resumed")
        if paused:
            for change in self._stop_events(self.clock()):
                self._send(change, None)
        else:
            self.detector.rebase()  # the scene may have changed while we looked away

    # -- output -----------------------------------------------------------------
    def _picture(self, ts: float) -> np.ndarray:
        """The best-resolution picture of time ``ts``: the live frame when it
        is recent, else the lores frame in colour."""
        if self.live is not None and abs(self.live[0] - ts) <= LIVE_MAX_AGE:
            picture = self.live[1]
            if isinstance(picture, np.ndarray):
                return picture
            decoded = cv2.imdecode(np.frombuffer(picture, np.uint8), cv2.IMREAD_COLOR)
            if decoded is None:
                raise BadFrame("the live JPEG does not decode")
            return decoded
        if self.lores is None:
            raise BadFrame("no frame yet")
        h, pixels = self.lores
        return lores_to_bgr(h.format, pixels, h.width, h.height)

    def _send(self, change: EventChange, fg: np.ndarray | None) -> None:
        assert self.pub is not None
        if change.phase == "start" and self.clock() < self.test_until:
            self.test_events[change.event_id] = self.test_run
            self.test_until = 0.0  # one event per run
        run = self.test_events.get(change.event_id, "")
        if change.phase == "end":
            self.test_events.pop(change.event_id, None)
        # A test event is labelled as one everywhere and is never an intrusion.
        labels = [*change.labels, "selftest"] if run else change.labels
        opened = self.open_event
        start = opened.start if opened is not None and opened.event_id == change.event_id \
            else change.ts
        self.pub.publish(Motion, ts=change.ts, event_id=change.event_id, phase=change.phase,
                         boxes=change.boxes, area=change.area, score=change.score,
                         labels=labels, zones=change.zones, alert=change.alert and not run,
                         loitering=change.loitering, crossings=change.crossings, test_run=run,
                         start=start)
        self._track_open(change, start, labels, run)
        if change.phase != "start":
            return
        self.stats["events"] += 1
        try:
            mask = fg if self.cfg.mask_snapshot else None
            self._snapshot(change.event_id, "event", change.ts, change.boxes, mask)
        except (BadFrame, ValueError, cv2.error) as exc:
            self.record_error("snapshot", exc)

    def _snapshot(self, event_id: str, kind: str, ts: float, boxes: list[list[float]],
                  mask: np.ndarray | None = None) -> None:
        """The annotated picture as JPEG; with ``mask``, the motion mask as a
        second part (the contract in ``common.messages.Snapshot``)."""
        assert self.pub is not None
        img = annotate(self._picture(ts), self.detector.config, boxes)  # the profile's masks
        parts = [encode_jpeg(img, self.cfg.snapshot_quality)]
        if mask is not None:
            parts.append(encode_jpeg(mask, 90))
        self.pub.publish(Snapshot, parts, ts=ts, event_id=event_id, kind=kind,
                         width=img.shape[1], height=img.shape[0])
        self.stats["snapshots"] += 1

    def _notice(self, finding: Finding) -> None:
        """A camera-health notice or all-clear for notify, with the picture
        the camera sends now (or sent last) as its photo."""
        assert self.pub is not None
        parts: list[bytes] = []
        try:
            parts = [encode_jpeg(self._picture(finding.ts), self.cfg.snapshot_quality)]
        except (BadFrame, ValueError, cv2.error):
            pass  # no picture yet: the words go alone
        self.pub.publish(Notice, parts, ts=finding.ts, kind=f"camera_{finding.kind}",
                         text=finding.text, all_clear=finding.all_clear, source=self.name)
        self.stats["notices"] = self.stats.get("notices", 0) + 1
        log.warning("camera health: %s%s", "all clear: " if finding.all_clear else "",
                    finding.text)

    def _track_open(self, change: EventChange, start: float, labels: list[str], run: str
                    ) -> None:
        if change.phase == "end":
            self.last_event = (change.event_id, start, change.ts)
            if self.open_event is not None and self.open_event.event_id == change.event_id:
                self.open_event = None
                self._next_open_event = float("-inf")  # "none open" at once
            return
        was = self.open_event
        self.open_event = OpenEvent(camera=self.camera, seq=0, ts=change.ts,
                                    event_id=change.event_id, start=start, labels=labels,
                                    zones=change.zones, alert=change.alert and not run,
                                    test_run=run)
        if was is None or was.event_id != change.event_id:
            self._next_open_event = float("-inf")

    def _tell_open_event(self, now: float) -> None:
        if now < self._next_open_event:
            return
        self._next_open_event = now + OPEN_EVENT_PERIOD
        o = self.open_event
        last_id, last_start, last_end = self.last_event
        assert self.pub is not None
        if o is None:
            self.pub.publish(OpenEvent, ts=now, event_id="", last_id=last_id,
                             last_start=last_start, last_end=last_end)
        else:
            self.pub.publish(OpenEvent, ts=now, event_id=o.event_id, start=o.start,
                             labels=o.labels, zones=o.zones, alert=o.alert,
                             test_run=o.test_run, last_id=last_id, last_start=last_start,
                             last_end=last_end)

    def tick(self, now: float) -> float | None:
        # The loop ticks after every wake-up, i.e. for every frame.
        self._tell_open_event(now)
        if now < self._next_tick:
            return None
        self._next_tick = now + TICK_PERIOD
        self._follow_profile()  # the schedule's hour may have come, or the IR state gone
        if self.detector.health is not None:
            for finding in self.detector.health.tick(now):
                self._notice(finding)
        # Frames stopped (capture restarting) while an event was open: end it
        # rather than leave the recorder waiting forever.
        if (self.detector.events.active
                and now - self.last_frame_wall > self.cfg.quiet_seconds + 2.0):
            for change in self._stop_events(now):
                self._send(change, None)
        return None

    def _stop_events(self, now: float) -> list[EventChange]:
        return self.pir_vote.frame(now, now, False, self.detector.stop(now))

    def drain(self) -> None:
        for change in self._stop_events(self.clock()):
            self._send(change, None)
