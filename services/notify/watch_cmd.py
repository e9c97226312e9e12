"""``pisentry watch``: a NAS (or any host) watching cameras from outside.

It subscribes to the cameras' heartbeat endpoints over tcp with CURVE (its
own key pair, ``bus.curve``, must be in each camera's
``bus.curve.authorized_clients``) and to their snapshots, feeds a
``common.watch.Watch``, and for each camera that goes silent, and again when
it returns, prints one line and sends one notice with the watcher's own
``notify.telegram`` and ``notify.email`` settings (the silence notice carries
the last snapshot it had). Cameras are every ``web.cameras`` entry of its
config, or the one given with ``--endpoint`` and ``--server-key``.

Threads: this one (bus and decisions); Telegram on its own loop thread, mail
on a one-thread executor, as in the notify service.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.bus import Bus, Subscriber
from common.messages import Heartbeat, Snapshot
from common.watch import Back, Gone, Watch

if TYPE_CHECKING:
    from common.config import Config
    from common.paths import Home

log = logging.getLogger(__name__)

POLL = 0.1


@dataclass(frozen=True)
class Target:
    camera: str  # "" when only its endpoints are known: the name comes with its heartbeats
    urls: list[str]
    server_key: str


def targets(config: Config, endpoints: list[str], server_key: str, camera: str
            ) -> list[Target]:
    if endpoints:
        return [Target(camera, endpoints, server_key)]
    return [Target(c.name, [u for n, u in c.endpoints.items() if n not in ("frames", "video")],
                   c.server_public_key) for c in config.web.cameras]


class Teller:
    """Where a watch notice goes: stdout always, Telegram and mail if set up."""

    def __init__(self, config: Config, as_json: bool) -> None:
        self.as_json = as_json
        self.config = config
        self.telegram: Any = None
        self.mail: ThreadPoolExecutor | None = None
        if config.notify.telegram.enabled:
            from services.notify.telegram_link import TelegramLink

            self.telegram = TelegramLink(config.notify.telegram, queue.Queue(), poll=False)
            self.telegram.start()
        if config.notify.email.enabled:
            self.mail = ThreadPoolExecutor(1, thread_name_prefix="mail")

    def tell(self, kind: str, camera: str, text: str, now: float, photo: bytes = b"",
             **extra: Any) -> None:
        self.show(kind, camera, text, now, photo, **extra)
        chats = self.config.notify.telegram.chat_ids
        if self.telegram is not None:
            if photo:
                self.telegram.send_photo(chats, photo, text)
            else:
                self.telegram.send_text(chats, text)
        if self.mail is not None:
            self.mail.submit(self._mail, f"pisentry watch: {text[:80]}", text, photo)

    def show(self, kind: str, camera: str, text: str, now: float, photo: bytes = b"",
             **extra: Any) -> None:
        """On stdout only (a camera first heard is news there, not an alert)."""
        if self.as_json:
            print(json.dumps({"ts": now, "kind": kind, "camera": camera, "text": text,
                              "snapshot_bytes": len(photo), **extra}), flush=True)
        else:
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))} {text}",
                  flush=True)

    def _mail(self, subject: str, text: str, photo: bytes) -> None:
        from services.notify.mailer import build_message, send_mail

        cfg = self.config.notify.email
        try:
            send_mail(cfg, build_message(cfg, subject, text, photo or None))
        except Exception as exc:  # noqa: BLE001 - smtplib, ssl and socket errors alike
            log.error("mail to %s failed: %s", cfg.host, exc)

    def close(self) -> None:
        if self.mail is not None:
            self.mail.shutdown(wait=True)
        if self.telegram is not None:
            time.sleep(0.5)  # let the last notice leave before the loop stops
            self.telegram.stop()


def run_watch(config: Config, home: Home, watched: list[Target], timeout: float,
              seconds: float = 0.0, as_json: bool = False) -> int:
    if not watched:
        print("pisentry watch: nothing to watch (give --endpoint and --server-key, or list "
              "cameras in web.cameras)", file=sys.stderr)
        return 2
    curve = config.bus.curve
    if any(u.startswith("tcp://") for t in watched for u in t.urls) and not (
            curve.public_key and curve.secret_key.get_secret_value()):
        print("pisentry watch: bus.curve.public_key and secret_key are required (make them "
              "with `pisentry keygen`; the camera must list the public key in "
              "bus.curve.authorized_clients)", file=sys.stderr)
        return 2
    stop = {"asked": False}

    def ask_stop(*_: Any) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGTERM, ask_stop)
    signal.signal(signal.SIGINT, ask_stop)
    bus = Bus(config, home)
    started = time.time()
    watch = Watch(timeout, started, expected=tuple(t.camera for t in watched if t.camera))
    subs: list[Subscriber] = [bus.subscriber([], [Heartbeat.TOPIC, Snapshot.TOPIC],
                                             endpoints=t.urls, server_key=t.server_key)
                              for t in watched]
    teller = Teller(config, as_json)
    try:
        while not stop["asked"] and not (seconds and time.time() - started >= seconds):
            for sub in subs:
                for msg in sub.recv(POLL / len(subs)):
                    now = time.time()
                    h = msg.header
                    if isinstance(h, Heartbeat):
                        if h.camera not in watch.last_seen:
                            teller.show("seen", h.camera, f"{h.camera}: heard", now)
                        back = watch.heard(h.camera, now)
                        if back is not None:
                            _tell_back(teller, back, now)
                    elif isinstance(h, Snapshot) and msg.payload:
                        watch.snapshot(h.camera, bytes(msg.payload[0]), h.ts)
            now = time.time()
            for gone in watch.check(now):
                _tell_gone(teller, gone, now)
    finally:
        teller.close()
        bus.close()
    return 0


def _tell_gone(teller: Teller, gone: Gone, now: float) -> None:
    text = gone.text(now)
    if gone.snapshot:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(gone.snapshot_ts))
        text += f"; last picture {when}"
    teller.tell("gone", gone.camera, text, now, gone.snapshot, last_seen=gone.last_seen)


def _tell_back(teller: Teller, back: Back, now: float) -> None:
    teller.tell("back", back.camera, back.text(now), now, gone_for=back.gone_for)
