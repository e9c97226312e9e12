"""Fixtures for the notify tests: real peers on loopback and a service harness."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from common.bus import Bus, Message
from common.config import Config, parse_config
from common.messages import Heartbeat
from common.paths import Home
from services.notify.service import NotifyService
from tests.notify.fake_telegram import FakeTelegram
from tests.notify.peers import MOSQUITTO, SSHD, Mosquitto, SmtpSink, SshServer, have

TOKEN = "123456:TEST-token-that-must-never-be-logged"
CHAT = 4242


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def jpeg(seed: int = 0, width: int = 320, height: int = 240) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home").ensure()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    if not have(SSHD):
        pytest.skip(f"{SSHD} is absent (apt-get install openssh-server)")
    server = SshServer(tmp_path / "sshd").start()
    yield server
    server.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if not have(MOSQUITTO):
        pytest.skip(f"{MOSQUITTO} is absent (apt-get install mosquitto)")
    broker = Mosquitto(tmp_path / "mqtt").start()
    yield broker
    broker.stop()


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    server = FakeTelegram(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


def backup_section(server: SshServer, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "host": "127.0.0.1", "port": server.port, "username": "root",
            "key_file": str(server.client_key), "known_hosts": str(server.known_hosts),
            "remote_dir": str(server.root / "cam"), "retry_max_seconds": 0.5, **extra}


def telegram_section(server: FakeTelegram, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "token": TOKEN, "chat_ids": [CHAT], "base_url": server.base_url,
            "cooldown_seconds": 0, "poll_timeout": 1, **extra}


class Harness:
    """A NotifyService on its own thread, with the test playing detect, record
    and web on real bus endpoints, and listening to what notify publishes."""

    def __init__(self, config: Config, home: Home) -> None:
        self.config = config
        self.home = home
        self.svc = NotifyService(config, home)
        self.bus = Bus(config, home)
        self.detect = self.bus.publisher("detect")
        self.record = self.bus.publisher("record")
        self.web = self.bus.publisher("web")
        self.frames = self.bus.publisher("frames")
        self.out = self.bus.subscriber(["notify"], [b"control/", b"state/"])
        self.received: list[Message] = []
        self.exit_code: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Harness:
        # The real lifecycle (setup, serve, drain, teardown), on a thread.
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        # Slow joiners: publish heartbeats until notify has heard each endpoint.
        for name, pub in (("detect", self.detect), ("record", self.record), ("web", self.web)):
            def heard(name: str = name, pub: Any = pub) -> bool:
                pub.publish(Heartbeat, ts=time.time(), service=name, pid=0,
                            started=0.0, status="ok")
                time.sleep(0.02)
                return name in self.svc.heartbeats
            wait_until(heard, 10, f"notify to hear {name}")
        time.sleep(0.2)  # the other sockets on the same endpoints connect alongside
        return self

    def _run(self) -> None:
        self.exit_code = self.svc.run()

    def stop(self) -> None:
        self.svc.request_stop()
        if self._thread is not None:
            self._thread.join(5)
            assert not self._thread.is_alive(), "notify did not stop"
        self.bus.close()
        assert self.exit_code == 0

    def outputs(self) -> list[Message]:
        self.received.extend(self.out.read())
        return self.received

    def wait_output(self, pred: Callable[[Message], bool], timeout: float = 5.0
                    ) -> Message:
        def found() -> Message | None:
            return next((m for m in self.outputs() if pred(m)), None)
        return wait_until(found, timeout, "a notify output")


@pytest.fixture
def harness_factory(home: Home) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(notify: dict[str, Any]) -> Harness:
        config = parse_config({"notify": notify})
        h = Harness(config, home).start()
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
