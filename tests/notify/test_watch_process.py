"""The watch from outside, with real processes over tcp + CURVE: a camera
process killed with SIGKILL is reported gone once (with the last snapshot),
and back once when it returns; the hub's notify does the same on Telegram;
a watcher whose key the camera does not list hears nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from common.bus import Bus
from common.config import parse_config
from common.messages import Snapshot
from common.paths import Home
from tests.notify.conftest import jpeg, telegram_section, wait_until
from tests.notify.fake_telegram import FakeTelegram
from tests.notify.peers import free_port
from tests.support import pisentry_process, write_config

TIMEOUT = 3.0


def keypair() -> tuple[str, str]:
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


class Camera:
    """A camera instance whose ir service (the lightest) heartbeats on tcp,
    and whose detect endpoint the test plays to send a snapshot."""

    def __init__(self, root: Path, watchers: list[str]) -> None:
        self.home = Home(root).ensure()
        self.public, secret = keypair()
        self.ports = {"ir": free_port(), "detect": free_port()}
        self.raw = {"general": {"camera": "camA"},
                    "bus": {"endpoints": {n: f"tcp://127.0.0.1:{p}" for n, p in self.ports.items()},
                            "curve": {"public_key": self.public, "secret_key": secret,
                                      "authorized_clients": watchers}}}
        self.urls = list(self.raw["bus"]["endpoints"].values())  # type: ignore[index]
        self.config_path = write_config(self.home, self.raw, "camera.toml")[0]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "PISENTRY_HOME": str(self.home.root)}
        self.proc = subprocess.Popen([sys.executable, "-m", "common.cli", "ir", "--config",
                                      str(self.config_path)], env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def send_snapshot(self, picture: bytes) -> None:
        bus = Bus(parse_config(self.raw), self.home)
        pub = bus.publisher("detect")
        try:
            for _ in range(30):  # slow joiner: the watcher connects within a few tries
                pub.publish(Snapshot, [picture], ts=time.time(), event_id="ev1", kind="event",
                            width=320, height=240)
                time.sleep(0.1)
        finally:
            bus.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


@pytest.fixture
def watcher_keys() -> tuple[str, str]:
    return keypair()


@pytest.fixture
def camera(tmp_path: Path, watcher_keys: tuple[str, str]) -> Iterator[Camera]:
    cam = Camera(tmp_path / "camera", [watcher_keys[0]])
    yield cam
    cam.stop()


class Lines:
    """The watcher's JSON lines, read on a thread as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        self._thread.start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.strip():
                self.seen.append(json.loads(line))

    def read(self) -> list[dict[str, Any]]:
        return list(self.seen)

    def wait(self, kind: str, n: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
        return wait_until(lambda: (m := [x for x in self.read() if x["kind"] == kind])
                          and len(m) >= n and m, timeout, f"{n} {kind} line(s)")


def start_watch(tmp_path: Path, keys: tuple[str, str], camera: Camera, name: str = "watch"
                ) -> subprocess.Popen[str]:
    home = Home(tmp_path / name).ensure()
    config = write_config(home, {"bus": {"curve": {"public_key": keys[0],
                                                   "secret_key": keys[1]}}})[0]
    cmd = [sys.executable, "-m", "common.cli", "watch", "--config", str(config), "--json",
           "--camera", "camA", "--server-key", camera.public, "--timeout", str(TIMEOUT)]
    for url in camera.urls:
        cmd += ["--endpoint", url]
    return subprocess.Popen(cmd, env={**os.environ, "PISENTRY_HOME": str(home.root)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def test_pisentry_watch_reports_a_killed_camera_once_and_its_return_once(
        camera: Camera, watcher_keys: tuple[str, str], tmp_path: Path) -> None:
    camera.start()
    watch = start_watch(tmp_path, watcher_keys, camera)
    try:
        lines = Lines(watch)
        lines.wait("seen", timeout=30)
        picture = jpeg(7)
        camera.send_snapshot(picture)
        killed = time.time()
        camera.kill()
        gone = lines.wait("gone", timeout=TIMEOUT * 3)[0]
        assert gone["camera"] == "camA" and "silent for" in gone["text"]
        assert 0 < gone["ts"] - killed <= 2 * TIMEOUT  # silent for TIMEOUT since its last beat
        assert gone["snapshot_bytes"] == len(picture) and "last picture" in gone["text"]
        time.sleep(TIMEOUT)  # still silent: no second notice
        assert len([x for x in lines.read() if x["kind"] == "gone"]) == 1
        camera.start()
        back = lines.wait("back", timeout=30)[0]
        assert "back after" in back["text"] and back["gone_for"] >= TIMEOUT
        assert [x["kind"] for x in lines.read()].count("gone") == 1
    finally:
        watch.terminate()
        watch.wait(10)
    assert watch.returncode == 0


def test_a_watcher_the_camera_does_not_list_hears_nothing(
        camera: Camera, watcher_keys: tuple[str, str], tmp_path: Path) -> None:
    camera.start()
    friend = start_watch(tmp_path, watcher_keys, camera)
    stranger = start_watch(tmp_path, keypair(), camera, "stranger")
    try:
        Lines(friend).wait("seen", timeout=30)  # the camera is up and talking
        lines = Lines(stranger)
        gone = lines.wait("gone", timeout=TIMEOUT * 4)[0]
        assert "no heartbeat since the watch started" in gone["text"]
        assert not [x for x in lines.read() if x["kind"] == "seen"]
    finally:
        for watch in (friend, stranger):
            watch.terminate()
            watch.wait(10)


def test_a_hub_tells_telegram_when_a_camera_it_shows_goes_silent_and_returns(
        camera: Camera, watcher_keys: tuple[str, str], telegram: FakeTelegram,
        tmp_path: Path) -> None:
    home = Home(tmp_path / "hub").ensure()
    hub = {"general": {"camera": "hub"},
           "bus": {"curve": {"public_key": watcher_keys[0], "secret_key": watcher_keys[1]}},
           "notify": {"telegram": telegram_section(telegram)},
           "health": {"watch_timeout_seconds": TIMEOUT},
           "web": {"cameras": [{"name": "camA", "server_public_key": camera.public,
                                "endpoints": {"ir": camera.urls[0],
                                              "detect": camera.urls[1]}}]}}
    camera.start()
    with pisentry_process("notify", home=home, config=hub) as proc:
        log = home.root / "notify.out"
        wait_until(lambda: "notify started" in log.read_text(), 30, "the hub's notify")
        time.sleep(TIMEOUT + 1)  # heard all along: nothing said
        assert telegram.of("sendMessage") == [] and telegram.of("sendPhoto") == []
        camera.send_snapshot(jpeg(3))
        camera.kill()
        photo = telegram.wait_for("sendPhoto", 1, TIMEOUT * 3)[0]
        assert photo.fields["caption"].startswith("camA: silent for")
        assert photo.files["photo"][2] == jpeg(3)
        camera.start()
        back = telegram.wait_for("sendMessage", 1, 30)[0]
        assert back.fields["text"].startswith("camA: back after")
        assert len(telegram.of("sendPhoto")) == 1
        assert proc.poll() is None
