"""The ways out of notify: Telegram, e-mail, MQTT. An alert, a clip, a notice
or an event goes to every channel that is configured, in the form each takes;
what to send and when is decided elsewhere (``alerts``, the service).

Mail goes through a one-thread executor so an SMTP server that hangs never
delays the bus; Telegram and MQTT have threads of their own. Counts
(``mail_sent``, ``mail_failed``, ``clips_sent``, ``notices``) go in the
service's heartbeat counters, which it hands over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.messages import Motion, Recording
from services.notify.alerts import AlertOut

if TYPE_CHECKING:
    from common.config import Config

log = logging.getLogger(__name__)


class Fanout:
    def __init__(self, config: Config, counters: dict[str, Any],
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = config.notify
        self.counters = counters
        self.clock = clock
        self.telegram: Any = None  # TelegramLink, when enabled
        self.mqtt: Any = None  # MqttLink, when enabled
        self.mail: ThreadPoolExecutor | None = None
        counters.update({"mail_sent": 0, "mail_failed": 0, "clips_sent": 0, "notices": 0})

    def start_mail(self) -> None:
        self.mail = ThreadPoolExecutor(1, thread_name_prefix="mail")

    def stop_mail(self) -> None:
        if self.mail is not None:
            self.mail.shutdown(wait=False, cancel_futures=False)

    # -- out -----------------------------------------------------------------------
    def alert(self, alert: AlertOut) -> None:
        if self.telegram is not None:
            self.telegram.send_alert(alert.event_id, alert.photo, alert.caption, alert.silent,
                                     self.clock())
        if self.mail is not None:
            self.mail.submit(self._mail, alert.caption.splitlines()[0], alert.caption,
                             alert.photo, f"{alert.camera}-{alert.event_id}.jpg")

    def notice(self, kind: str, text: str, all_clear: bool = False, photo: bytes = b"") -> None:
        """Told even when muted, on every channel, never silently logged only."""
        self.counters["notices"] += 1
        if self.telegram is not None:
            if photo:
                self.telegram.send_photo(self.cfg.telegram.chat_ids, photo, text[:1000])
            else:
                self.telegram.send_text(self.cfg.telegram.chat_ids, text)
        if self.mail is not None:
            subject = ("pisentry: all clear: " if all_clear else "pisentry: ") + text[:80]
            self.mail.submit(self._mail, subject, text, photo, "snapshot.jpg")
        if self.mqtt is not None:
            self.mqtt.publish_json("notice", {"kind": kind, "text": text,
                                              "all_clear": all_clear, "ts": self.clock()})

    def clip(self, chats: list[int], path: str, caption: str) -> None:
        """A clip as a Telegram video, or a line saying why not."""
        try:
            size = Path(path).stat().st_size
        except OSError:
            self.telegram.send_text(chats, f"{caption}: the file is gone")
            return
        if size > self.cfg.telegram.max_clip_mb * 1024 * 1024:
            self.telegram.send_text(chats, f"{caption}: {size / 1e6:.0f} MB, too large to send")
            return
        self.counters["clips_sent"] += 1
        self.telegram.send_video(chats, path, caption)

    def motion(self, m: Motion) -> None:
        if self.mqtt is None:
            return
        kind = {"start": "new"}.get(m.phase, m.phase)
        self.mqtt.publish_json("events", {"type": kind, "event_id": m.event_id,
                                          "camera": m.camera, "ts": m.ts, "labels": m.labels,
                                          "zones": m.zones, "score": m.score, "boxes": m.boxes,
                                          "alert": m.alert})
        if m.phase in ("start", "end"):
            self.mqtt.motion(m.phase == "start")

    def snapshot(self, jpeg: bytes) -> None:
        if self.mqtt is not None:
            self.mqtt.snapshot(jpeg)

    def recording(self, r: Recording) -> None:
        if self.mqtt is not None:
            self.mqtt.publish_json("recording", {"path": r.path, "start": r.start,
                                                 "end": r.end, "duration": r.duration,
                                                 "size": r.size, "event_id": r.event_id,
                                                 "reason": r.reason})

    def armed(self, armed: bool) -> None:
        if self.mqtt is not None:
            self.mqtt.armed(armed)

    # -- mail (on the mail thread) -------------------------------------------------
    def mail_one(self, subject: str, text: str, photo: bytes) -> bool:
        """One mail; True once the server took it (the self-test's proof)."""
        failed = self.counters["mail_failed"]
        self._mail(subject, text, photo, "snapshot.jpg")
        return bool(self.counters["mail_failed"] == failed)

    def _mail(self, subject: str, text: str, photo: bytes, photo_name: str) -> None:
        from services.notify.mailer import build_message, send_mail

        cfg = self.cfg.email
        try:
            send_mail(cfg, build_message(cfg, subject, text, photo or None, photo_name))
            self.counters["mail_sent"] += 1
        except Exception as exc:  # noqa: BLE001 - smtplib, ssl and socket errors alike
            self.counters["mail_failed"] += 1
            log.error("mail to %s failed: %s", cfg.host, exc)
