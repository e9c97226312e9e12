"""The whole system as a user runs it, with every peer real and on loopback.

Used by the system tests and by the bench scripts (footprint, soak):

- ``Peers``: OpenSSH sshd as the NAS, the fake Bot API server, an SMTP sink
  with STARTTLS (so a password may be configured) and mosquitto, each the
  helper the notify tests already use.
- ``system_config``: a pisentry config wired to those peers, with a secret in
  every secret field (``SECRETS``) so the logs can be searched for them.
- ``BusWatch``: a thread that keeps every motion, recording and heartbeat
  message the pipeline publishes.
- ``StandInDetect``: until ``services/detect/service.py`` exists, plays the
  detector on the bus (motion start, event snapshot, end) at the synthetic
  source's passer-by cadence, exactly as the web browser test does.
- ``/proc`` helpers: resident memory, open descriptors and CPU time of a pid.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from common.bus import ENDPOINT_NAMES, Bus, Message
from common.config import Config
from common.messages import Heartbeat, Motion, Recording, Snapshot
from common.paths import Home
from tests.notify.fake_telegram import FakeTelegram, _error
from tests.notify.peers import MOSQUITTO, SSHD, Mosquitto, SmtpSink, SshServer, free_port, have

HAVE_DETECT = importlib.util.find_spec("services.detect.service") is not None

TOKEN = "987654:SYSTEM-bot-token-must-never-be-logged"
CHAT = 777
SECRETS = {
    "telegram token": TOKEN,
    "smtp password": "smtp-pw-NEVER-LOGGED-31337",
    "mqtt password": "mqtt-pw-NEVER-LOGGED-4242",
    "web api key": "web-api-key-NEVER-LOGGED-0042-0123456789",
}
API_HEADERS = {"X-API-Key": SECRETS["web api key"]}


class OutageTelegram(FakeTelegram):
    """The fake Bot API with a switch: while ``outage`` is set every method
    answers 500 (Telegram having a bad minute) and nothing is recorded."""

    outage: bool = False

    async def _handle(self, request: web.Request) -> web.Response:
        if self.outage:
            await request.read()
            return _error(500, "Internal Server Error")
        return await super()._handle(request)

    def alerts_for(self, event_id: str) -> int:
        """Alerts about the event: photos, and words when its picture never came."""
        return sum(1 for c in self.of("sendPhoto") + self.of("sendMessage")
                   if event_id in c.fields.get("reply_markup", ""))

    def videos_named(self, name: str) -> int:
        return sum(1 for c in self.of("sendVideo")
                   if any(f[0] == name for f in c.files.values()))


class AuthSmtpSink(SmtpSink):
    """The notify tests' SMTP sink, with STARTTLS required and a login that must
    carry ``SECRETS["smtp password"]`` (so the password really is configured and used)."""

    def __init__(self, tls_context: ssl.SSLContext) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        super().__init__(tls_context)
        self.logins: list[str] = []

        def check(server: object, session: object, envelope: object, mechanism: str,
                  auth_data: Any) -> AuthResult:
            ok = (auth_data.login == b"cam"
                  and auth_data.password == SECRETS["smtp password"].encode())
            if ok:
                self.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        self.controller = Controller(self.controller.handler, hostname="127.0.0.1",
                                     port=self.port, tls_context=tls_context,
                                     require_starttls=True, authenticator=check,
                                     auth_require_tls=True, auth_required=True)


def _self_signed(folder: Path) -> ssl.SSLContext:
    from tests.notify.test_email import self_signed

    cert, key = self_signed(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class Peers:
    """Every outside party of a camera, on loopback, in ``folder``."""

    def __init__(self, folder: Path | None = None) -> None:
        self.dir = folder or Path(tempfile.mkdtemp(prefix="ps-peers-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        missing = [b for b in (SSHD, MOSQUITTO) if not have(b)]
        if missing:
            raise RuntimeError(f"absent: {', '.join(missing)} (./test.sh installs them)")
        self.nas = SshServer(self.dir / "sshd")
        self.mqtt = Mosquitto(self.dir / "mqtt")
        self.telegram = OutageTelegram(TOKEN)
        self.smtp = AuthSmtpSink(_self_signed(self.dir))
        self.ca_file = self.dir / "cert.pem"

    def start(self) -> Peers:
        self.nas.start()
        self.mqtt.start()
        self.telegram.start()
        self.smtp.start()
        return self

    def stop(self) -> None:
        for part in (self.nas, self.mqtt, self.telegram, self.smtp):
            try:
                part.stop()
            except Exception:  # noqa: BLE001, S110 - tear down the rest regardless
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def nas_clips(self) -> dict[str, list[Path]]:
        """Clip file name -> the copies of it on the NAS (pieces and temp names left out)."""
        out: dict[str, list[Path]] = {}
        for p in sorted((self.nas.root / "cam").rglob("*.mp4")):
            out.setdefault(p.name, []).append(p)
        return out


def system_config(peers: Peers, web_port: int, *, services: list[str] | None = None,
                  **sections: dict[str, Any]) -> dict[str, Any]:
    """A config with every service and every notification channel switched on."""
    nas = peers.nas
    raw: dict[str, Any] = {
        "general": {"services": services or
                    ["capture", "detect", "record", "notify", "ir", "web"]},
        "capture": {"source": "synthetic", "width": 640, "height": 480, "fps": 15,
                    "object_period": 10, "bitrate": 1_000_000},
        "detect": {"quiet_seconds": 1.5},
        "record": {"rec_sec_before": 1, "rec_sec_after": 1},
        "notify": {
            "telegram": {"enabled": True, "token": TOKEN, "chat_ids": [CHAT],
                         "base_url": peers.telegram.base_url, "cooldown_seconds": 0,
                         "poll_timeout": 1},
            "email": {"enabled": True, "host": "127.0.0.1", "port": peers.smtp.port,
                      "security": "starttls", "ca_file": str(peers.ca_file),
                      "username": "cam", "password": SECRETS["smtp password"],
                      "sender": "cam@example.org", "recipients": ["me@example.org"],
                      "timeout_seconds": 5},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": peers.mqtt.port,
                     "username": "cam", "password": SECRETS["mqtt password"], "keepalive": 5},
            "backup": {"enabled": True, "host": "127.0.0.1", "port": nas.port,
                       "username": "root", "key_file": str(nas.client_key),
                       "known_hosts": str(nas.known_hosts), "remote_dir": str(nas.root / "cam"),
                       "retry_max_seconds": 1.0, "connect_timeout": 3},
        },
        "ir": {"enabled": True, "serial_port": "sim"},
        "web": {"port": web_port, "api_key": SECRETS["web api key"]},
    }
    for name, values in sections.items():
        merged = raw.setdefault(name, {})
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return raw


@dataclass
class BusWatch:
    """Every motion, recording and heartbeat message, kept on a thread."""

    config: Config
    home: Home
    motions: list[Motion] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)
    heartbeats: dict[str, Heartbeat] = field(default_factory=dict)
    history: list[Heartbeat] = field(default_factory=list)

    def start(self) -> BusWatch:
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        bus = Bus(self.config, self.home)
        names = [n for n in ENDPOINT_NAMES if n not in ("frames", "video")]
        sub = bus.subscriber(names, [Motion.TOPIC, Recording.TOPIC, Heartbeat.TOPIC], hwm=10000)
        try:
            while not self._stop:
                for msg in sub.recv(0.1):
                    self._keep(msg)
        finally:
            bus.close()

    def _keep(self, msg: Message) -> None:
        h = msg.header
        with self._lock:
            if isinstance(h, Motion):
                self.motions.append(h)
            elif isinstance(h, Recording):
                self.recordings.append(h)
            elif isinstance(h, Heartbeat):
                self.heartbeats[h.service] = h
                self.history.append(h)
                del self.history[:-5000]

    def stop(self) -> None:
        self._stop = True
        self._thread.join(5)

    def started_events(self) -> list[str]:
        with self._lock:
            return list(dict.fromkeys(m.event_id for m in self.motions if m.phase == "start"))

    def finished(self) -> list[Recording]:
        with self._lock:
            return [r for r in self.recordings if r.phase == "finished"]

    def heartbeat(self, service: str) -> Heartbeat | None:
        with self._lock:
            return self.heartbeats.get(service)


class StandInDetect:
    """Plays the detector on the ``detect`` endpoint while the real service is
    absent: an event of ``length`` seconds every ``period`` seconds, with an
    event snapshot (a JPEG made from the newest live frame)."""

    def __init__(self, config: Config, home: Home, period: float, length: float = 4.0) -> None:
        self.config, self.home = config, home
        self.period, self.length = period, length
        self.events: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StandInDetect:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self._thread.join(self.length + 5)

    def _sleep(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._stop:
                return False
            time.sleep(0.05)
        return True

    def _run(self) -> None:
        import cv2
        import numpy as np

        bus = Bus(self.config, self.home)
        pub = bus.publisher("detect")
        jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
        n = 0
        try:
            if not self._sleep(3.0):
                return
            while True:
                n += 1
                event = f"standin-{os.getpid()}-{n}"
                t0 = time.time()
                pub.publish(Motion, ts=t0, event_id=event, phase="start",
                            boxes=[[0.4, 0.4, 0.1, 0.3]], area=0.03)
                pub.publish(Snapshot, [jpeg], ts=t0, event_id=event, kind="event",
                            width=320, height=240)
                self.events.append(event)
                ok = self._sleep(self.length)
                pub.publish(Motion, ts=time.time(), event_id=event, phase="end",
                            boxes=[[0.6, 0.4, 0.1, 0.3]], area=0.03)
                if not ok or not self._sleep(max(0.5, self.period - self.length)):
                    return
        finally:
            time.sleep(0.2)
            bus.close()


# -- /proc --------------------------------------------------------------------------------
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def pss_mb(pid: int) -> float:
    """Proportional set size: shared library pages split among their users, so
    the sum over services is what they really cost together."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss_mb(pid)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def mapped_libraries(pid: int) -> set[str]:
    """Which heavy native libraries a process has loaded (numpy, cv2, av,
    cryptography, pydantic)."""
    found = set()
    with open(f"/proc/{pid}/maps") as f:
        text = f.read()
    for name, marker in (("numpy", "numpy/"), ("cv2", "/cv2/"), ("av", "/av/"),
                         ("paramiko/cryptography", "cryptography"),
                         ("pydantic", "pydantic_core")):
        if marker in text:
            found.add(name)
    return found


def wait_until(cond: Callable[[], Any], timeout: float, what: str, poll: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


__all__ = ["API_HEADERS", "CHAT", "HAVE_DETECT", "SECRETS", "TOKEN", "BusWatch", "Peers",
           "StandInDetect", "cpu_seconds", "free_port", "mapped_libraries", "open_fds",
           "pss_mb", "rss_mb", "system_config", "wait_until"]
