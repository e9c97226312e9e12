"""The notify service: alerts out (Telegram, e-mail, MQTT, hooks), chat control
in, arming state, and backups to a NAS.

Wiring only, read top to bottom: the decisions live in ``alerts`` (whether an
event alerts), ``presence`` and ``common.arming`` (the arm state), the ways out
in ``fanout`` (Telegram, mail, MQTT), the chat's replies in ``chat``, training
mode in ``dataset``, uploads in ``backup``. Subscriptions: ``motion/`` and ``snapshot/`` from detect,
``recording/`` from record, ``heartbeat/`` from every service, commands
(``control/``) from web and record. notify owns the arm state: every change
goes through ``common.arming.apply`` here, is saved here and goes out as
``state/`` (``ArmState``, on every change and every 10 s for late joiners).
Publishes ``Rotate`` (to ir), ``Forget`` and ``Label`` (to record) on its own
endpoint.

Threads: this one (bus, decisions, arming), the Telegram loop, paho's network
thread, the backup thread and a one-thread mail executor. Only this thread
touches the bus and the arming store; the others hand work back through
``self.inbox``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.arming import ArmingCommand, ArmingStore, ArmSchedule, apply
from common.bus import STATUS_ENDPOINTS, Bus, Message
from common.catalogue import CatalogueReader
from common.messages import (
    ARMING_COMMANDS,
    COMMAND_PREFIX,
    Arm,
    ArmState,
    Disarm,
    Forget,
    Heartbeat,
    Motion,
    Notice,
    Recording,
    SelfTest,
    Snapshot,
)
from common.paths import Home, write_json_atomically
from common.pihealth import Problems, read_health
from common.watch import Gone, Watch
from common.worker import SetupError, Worker
from services.notify.alerts import AlertOut, AlertPolicy
from services.notify.chat import Chat
from services.notify.commands import Incoming
from services.notify.dataset import DataSet
from services.notify.fanout import Fanout
from services.notify.hooks import HookRunner
from services.notify.presence import Presence
from services.notify.selftest import SelfTester, daily_due

if TYPE_CHECKING:
    from common.config import Config

log = logging.getLogger(__name__)

STATE_REPUBLISH = 10.0
PRESENCE_PERIOD = 30.0
ALERT_PHOTO_WAIT = 2.0  # an alert whose snapshot is this late goes out as text
HEARTBEAT_STALE = 3.0
BACKUP_CATCH_UP_SECONDS = 3600.0  # finished clips re-queued at start (seen by nobody)


class NotifyService(Worker):
    name = "notify"

    def __init__(self, config: Config, home: Home, bus: Bus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, home, bus, clock)
        self.cfg = config.notify
        tg = self.cfg.telegram
        self.store = ArmingStore(home)
        self.arming = self.store.load()
        self.policy = AlertPolicy(tg.cooldown_seconds, tg.quiet_hours, tg.quiet_mode)
        # Alerted events survive a restart, so an event's later messages after
        # one (which alert when its start was missed) never alert it twice.
        self.alerted_file = home.state_dir / "alerted-events.json"
        self.policy.remember_alerted(self._load_alerted())
        self.inbox: queue.Queue[Incoming] = queue.Queue()
        self.hooks = HookRunner(self.cfg.hooks.timeout_seconds, self.cfg.hooks.max_running)
        self.schedule = ArmSchedule(self.cfg.arm_schedule)
        self.presence = (Presence(self.cfg.presence_hosts, self.cfg.presence_away_seconds)
                         if self.cfg.presence_hosts else None)
        self.fanout = Fanout(config, self.counters, self.clock)
        self.dataset = DataSet(home, self.camera, self.clock)
        self.telegram: Any = None
        self.mqtt: Any = None
        self.chat: Chat | None = None
        self.backup: Any = None
        self.heartbeats: dict[str, tuple[float, str]] = {}
        self.last_event_ts = 0.0
        self._next_state = 0.0
        self._next_presence = 0.0
        self.counters["arming_save_errors"] = 0
        self.problems = Problems(config.health)
        self.selftest: SelfTester | None = None  # made in setup, once the backup is
        self._selftest_day = ""  # the local day the daily run last started
        self._next_health = 0.0
        # A hub watches the cameras it shows: silence of one is told here.
        hub = config.web.cameras
        self.watch = (Watch(config.health.watch_timeout_seconds, self.clock(),
                            expected=tuple(c.name for c in hub)) if hub else None)

    # -- lifecycle -------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        # detect also tells when the camera itself is in trouble (Notice)
        self.subscribe(["detect"], [Motion.TOPIC, Snapshot.TOPIC, Notice.TOPIC])
        self.subscribe(["record"], [Recording.TOPIC])
        self.subscribe([n for n in STATUS_ENDPOINTS if n != self.name], [Heartbeat.TOPIC])
        # web arms, disarms and mutes; record sends a Notice when it had to
        # delete clips still waiting for upload
        self.subscribe(["web", "record"], [COMMAND_PREFIX])
        for cam in self.config.web.cameras:
            urls = [u for n, u in cam.endpoints.items() if n not in ("frames", "video")]
            if urls:
                self.subscribe([], [Heartbeat.TOPIC, Snapshot.TOPIC], endpoints=urls,
                               server_key=cam.server_public_key)
        if cfg.telegram.enabled:
            from services.notify.telegram_link import TelegramLink

            if not cfg.telegram.token.get_secret_value() or not cfg.telegram.chat_ids:
                raise SetupError("notify.telegram is enabled but has no token or no chat_ids")
            self.telegram = self.fanout.telegram = TelegramLink(cfg.telegram, self.inbox)
            self.chat = Chat(self, self.telegram, self.bus, self.home, self.fanout, self.dataset)
            self.telegram.start()
        if cfg.email.enabled:
            if not (cfg.email.host and cfg.email.recipients):
                raise SetupError("notify.email is enabled but has no host or no recipients")
            self.fanout.start_mail()
        if cfg.mqtt.enabled:
            from services.notify.mqtt_link import MqttLink

            self.mqtt = self.fanout.mqtt = MqttLink(cfg.mqtt, self.camera, self._mqtt_arm)
            self.mqtt.armed(self.arming.armed)
            self.mqtt.start()
        if cfg.backup.enabled:
            from services.notify.backup import BackupManager
            from services.notify.crypto import CryptoError

            b = cfg.backup
            if not (b.host and b.known_hosts):
                raise SetupError("notify.backup needs host and known_hosts (the NAS host key "
                                 "is always checked)")
            for what, path in (("known_hosts", b.known_hosts), ("key_file", b.key_file)):
                if path and not Path(path).is_file():
                    raise SetupError(f"notify.backup.{what}: {path} does not exist")
            try:
                self.backup = BackupManager(b, self.home.backup_queue)
            except CryptoError as exc:
                raise SetupError(f"notify.backup.encrypt_public_key: {exc}") from None
            self.backup.start()
            self._catch_up_backups()
        self.selftest = SelfTester(self.camera, self.config.health.selftest_timeout_seconds,
                                   self.home.state_dir / "selftest.json", self.fanout,
                                   self.backup, self.send, self.tell)
        self.publish_state(self.clock())

    def _catch_up_backups(self) -> None:
        """Queue the recent finished clips again: one that finished while this
        process was down (killed, restarting) was announced to nobody. A clip
        already on the NAS costs one size check and is not sent twice."""
        since = self.clock() - BACKUP_CATCH_UP_SECONDS
        try:
            with CatalogueReader(self.home.catalogue) as cat:
                clips = cat.clips(camera=self.camera, limit=200)
        except Exception as exc:  # noqa: BLE001 - no catalogue yet: nothing to catch up
            log.debug("backup catch-up: %s", exc)
            return
        for clip in clips:
            if clip.state != "open" and clip.end >= since and os.path.exists(clip.path):
                self.backup.enqueue_clip(clip.path, clip.camera, clip.start)

    def drain(self) -> None:
        self.fanout.stop_mail()

    def teardown(self) -> None:
        # Bounded waits: the whole stop stays within the worker's 2 s. An upload cut
        # short here resumes from the queue on disk at the next start.
        for part in (self.telegram, self.backup, self.mqtt):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # noqa: BLE001 - stopping one part must not stop the others
                    log.warning("stopping %s: %s", type(part).__name__, exc)
        self.hooks.stop()
        if self.chat is not None:
            self.chat.close()

    def status_counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.policy.counters, **self.hooks.counters,
                               "armed": self.arming.armed,
                               "muted": self.arming.muted(self.clock()),
                               "health_problems": list(self.problems.active.values())}
        if self.selftest is not None and self.selftest.run is not None:
            run = self.selftest.run
            out["selftest"] = run.report() if run.done else "running"
        if self.watch is not None:
            out["watch_silent"] = sorted(self.watch.gone)
        if self.telegram is not None:
            out.update(self.telegram.counters)
        if self.backup is not None:
            out.update(self.backup.stats())
        # An outage of a peer shows on the health page and in `pisentry status`.
        problems = []
        if out.get("backup_pending") and out.get("backup_last_error"):
            problems.append(f"NAS: {out['backup_last_error']}"[:120])
        if self.telegram is not None and self.telegram.failing:
            problems.append(f"Telegram: {self.telegram.failing}")
        if self.mqtt is not None and not self.mqtt.connected:
            problems.append("MQTT broker unreachable")
        self.degraded = "; ".join(problems)
        return out

    # -- bus ---------------------------------------------------------------------------
    def handle(self, msg: Message) -> None:
        header = msg.header
        if self.watch is not None and header.camera != self.camera:
            self.on_watched(header, msg)
        elif isinstance(header, Motion):
            self.on_motion(header)
        elif isinstance(header, Snapshot):
            self.on_snapshot(header, bytes(msg.payload[0]) if msg.payload else b"")
        elif isinstance(header, Recording):
            self.on_recording(header)
        elif isinstance(header, Heartbeat):
            self.heartbeats[header.service] = (header.ts, header.status)
        elif isinstance(header, ARMING_COMMANDS):
            self.change_arming(header, self.clock())
        elif isinstance(header, Notice):
            self.on_notice(header, bytes(msg.payload[0]) if msg.payload else b"")
        elif isinstance(header, SelfTest) and not header.run_id:
            self.start_selftest(header.source or "?", self.clock())

    def on_motion(self, m: Motion) -> None:
        now = self.clock()
        if m.test_run and self.selftest is not None:
            self.selftest.on_motion(m, now)
            return
        if m.phase == "start":
            self.last_event_ts = m.ts
        alert = self.policy.on_motion(m, self.arming, now)
        if alert is not None:
            self.send_alert(alert)
        env = {"PISENTRY_EVENT": m.event_id, "PISENTRY_CAMERA": m.camera,
               "PISENTRY_PHASE": m.phase, "PISENTRY_LABELS": ",".join(m.labels),
               "PISENTRY_ZONES": ",".join(m.zones)}
        if m.phase == "start":
            self.hooks.start("on_event_start", self.cfg.hooks.on_event_start, env)
        elif m.phase == "end":
            self.hooks.start("on_event_end", self.cfg.hooks.on_event_end, env)
        self.fanout.motion(m)

    def on_snapshot(self, s: Snapshot, jpeg: bytes) -> None:
        if not jpeg:
            log.warning("snapshot %s from %s has no JPEG; dropped", s.kind, s.camera)
            return
        if self.selftest is not None and self.selftest.on_snapshot(s.event_id, jpeg):
            return
        if s.kind == "event" and s.event_id:
            alert = self.policy.on_snapshot(s.event_id, s.camera, s.ts, jpeg)
            if alert is not None:
                self.send_alert(alert)
            self.fanout.snapshot(jpeg)

    def on_recording(self, r: Recording) -> None:
        if r.phase == "progress":
            if self.backup is not None and r.path:
                self.backup.enqueue_piece(r.path, r.camera, r.start, r.size)
            return
        if r.phase != "finished":
            return
        if self.selftest is not None and self.selftest.on_clip(r, self.clock()):
            return
        self.hooks.start("on_recording", self.cfg.hooks.on_recording,
                         {"PISENTRY_EVENT": r.event_id, "PISENTRY_CAMERA": r.camera,
                          "PISENTRY_PHASE": "recording", "PISENTRY_PATH": r.path})
        self.fanout.recording(r)
        if self.backup is not None:
            self.backup.enqueue_clip(r.path, r.camera, r.start)
        tg = self.cfg.telegram
        if self.telegram is not None and tg.send_clip and r.event_id and \
                self.policy.alerted(r.event_id):
            self.fanout.clip(tg.chat_ids, r.path, f"Clip of the event on {r.camera} "
                                                  f"({r.duration:.0f} s)")

    def on_notice(self, n: Notice, photo: bytes = b"") -> None:
        self.tell(n.kind, f"{n.camera}: {n.text[:500]}", n.source or "?", all_clear=n.all_clear,
                  photo=photo)

    def tell(self, kind: str, text: str, source: str, all_clear: bool = False,
             photo: bytes = b"") -> None:
        """The one way a notice goes out (a full disk eating unsent clips, the
        Pi under-powered, a watched camera silent, and their all-clears)."""
        log.warning("notice (%s) from %s: %s", kind, source, text)
        self.fanout.notice(kind, text, all_clear, photo)

    def start_selftest(self, by: str, now: float) -> bool:
        """A self-test run (see ``selftest``); False if one is running."""
        return self.selftest is not None and self.selftest.start(by, now)

    def on_watched(self, header: Any, msg: Message) -> None:
        """A message of a camera this hub watches: heartbeats keep it alive,
        snapshots are what a silence notice shows."""
        assert self.watch is not None
        now = self.clock()
        if isinstance(header, Heartbeat):
            back = self.watch.heard(header.camera, now)
            if back is not None:
                self.tell("watch", back.text(now), "watch", all_clear=True)
        elif isinstance(header, Snapshot) and msg.payload:
            self.watch.snapshot(header.camera, bytes(msg.payload[0]), header.ts)

    def check_health(self, now: float) -> None:
        """This Pi's power, temperature, disk and memory: one notice when a
        condition starts, one all-clear when it ends."""
        self._next_health = now + self.config.health.check_seconds
        storage = Path(self.config.record.storage_dir or self.home.recordings_dir)
        for t in self.problems.update(read_health(self.config.health, storage)):
            self.tell("health", f"{self.camera}: {t.text}", "health", all_clear=not t.raised)

    def tell_gone(self, gone: Gone, now: float) -> None:
        text = gone.text(now)
        if gone.snapshot:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(gone.snapshot_ts))
            text += f"; last picture {when}"
        self.tell("watch", text, "watch", photo=gone.snapshot)

    # -- actions -------------------------------------------------------------------------
    def _load_alerted(self) -> list[str]:
        try:
            ids = json.loads(self.alerted_file.read_text())
        except (OSError, ValueError):
            return []
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

    def send_alert(self, alert: AlertOut) -> None:
        write_json_atomically(self.alerted_file, self.policy.alerted_ids())
        self.fanout.alert(alert)

    def change_arming(self, command: ArmingCommand, now: float) -> None:
        """The one place the arm state changes: apply, save, announce. A
        state that cannot be saved (a full disk) still holds and is announced:
        the owner asked for it; only a restart would forget it."""
        self.arming = apply(self.arming, command, now)
        try:
            self.store.save(self.arming)
        except OSError as exc:
            self.counters["arming_save_errors"] += 1
            log.error("cannot save the arm state (%s); it holds in memory until a restart",
                      exc)
        log.info("arming: armed=%s muted_until=%.0f by %s", self.arming.armed,
                 self.arming.muted_until, self.arming.changed_by)
        self.publish_state(now)
        self.fanout.armed(self.arming.armed)

    def own_arming(self, cls: type[ArmingCommand], by: str, now: float, **fields: float
                   ) -> None:
        """A change asked for here (Telegram, MQTT, schedule, presence): the
        same command the web sends, applied the same way."""
        self.change_arming(cls(camera=self.camera, seq=0, ts=now, source=by, **fields), now)

    def publish_state(self, now: float) -> None:
        if self.pub is None:
            return
        self._next_state = now + STATE_REPUBLISH
        self.pub.publish(ArmState, ts=now, armed=self.arming.armed,
                         muted_until=self.arming.muted_until,
                         changed_by=self.arming.changed_by or self.name,
                         changed_at=self.arming.changed_at)

    def send(self, cls: type, **fields: Any) -> None:
        """One message on our endpoint (a command to ir or record)."""
        assert self.pub is not None
        fields.setdefault("source", self.name)
        self.pub.publish(cls, ts=self.clock(), **fields)

    def event_facts(self, event_id: str) -> tuple[float, list[str], list[str]]:
        """(start, labels, zones) of an event as the alert policy saw it."""
        info = self.policy.events.get(event_id)
        return (info.ts, info.labels, info.zones) if info else (0.0, [], [])

    def _mqtt_arm(self, armed: bool) -> None:
        self.inbox.put(Incoming("mqtt", 0, "arm" if armed else "disarm"))

    # -- periodic ------------------------------------------------------------------------
    def tick(self, now: float) -> float | None:
        if now >= self._next_health:
            self.check_health(now)
        if self.selftest is not None:
            self.selftest.tick(now)
            day = daily_due(self.config.health.selftest_time, now, self._selftest_day)
            if day:
                self._selftest_day = day
                self.start_selftest("schedule", now)
        if self.watch is not None:
            for gone in self.watch.check(now):
                self.tell_gone(gone, now)
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            self.on_incoming(item, now)
        self.hooks.poll()
        self._forget_uploaded_clips(now)
        for alert in self.policy.overdue(now, ALERT_PHOTO_WAIT):
            self.send_alert(alert)
        if self.chat is not None:
            self.chat.tick(now)
        wanted = self.schedule.edge(now)
        if wanted is not None and wanted != self.arming.armed:
            self.own_arming(Arm if wanted else Disarm, "schedule", now)
        if self.presence is not None and now >= self._next_presence:
            self._next_presence = now + PRESENCE_PERIOD
            home = self.presence.look(now)
            if home is not None and home == self.arming.armed:
                self.own_arming(Disarm if home else Arm, "presence", now)
        if now >= self._next_state:
            self.publish_state(now)
        return None

    def _forget_uploaded_clips(self, now: float) -> None:
        """Clips the backup deleted locally leave the recorder's catalogue too."""
        if self.backup is None or self.pub is None:
            return
        while True:
            try:
                path = self.backup.deleted_local.get_nowait()
            except queue.Empty:
                return
            self.send(Forget, path=path)

    def on_incoming(self, item: Incoming, now: float) -> None:
        if item.kind == "mqtt":
            self.own_arming(Arm if item.text == "arm" else Disarm, "mqtt", now)
        elif self.chat is not None and item.kind == "label":
            self.chat.on_label(item)
        elif self.chat is not None and item.kind == "command":
            self.chat.on_command(item, now)

    def status_text(self, now: float) -> str:
        a = self.arming
        lines = [f"{self.camera}: {'ARMED' if a.armed else 'disarmed'}"
                 + (f", muted for {(a.muted_until - now) / 60:.0f} min" if a.muted(now) else "")]
        if a.changed_by:
            lines.append(f"last change by {a.changed_by}")
        for service in sorted(self.heartbeats):
            ts, status = self.heartbeats[service]
            alive = "up" if now - ts < HEARTBEAT_STALE else f"silent {now - ts:.0f} s"
            lines.append(f"{service}: {status}, {alive}")
        if self.last_event_ts:
            lines.append("last event " + time.strftime("%Y-%m-%d %H:%M:%S",
                                                       time.localtime(self.last_event_ts)))
        if self.backup is not None:
            stats = self.backup.stats()
            lines.append(f"backup: {stats['backup_pending']} pending, "
                         f"{stats['backup_uploaded']} uploaded")
        return "\n".join(lines)
