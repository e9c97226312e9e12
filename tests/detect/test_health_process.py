"""Camera health through real detect and notify processes: a frozen feed and a
stopped feed each raise one notice (with the camera's picture) and one
all-clear on a (fake, real-HTTP) Telegram."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.bus import Bus, Publisher
from common.config import parse_config
from common.messages import Frame, Heartbeat
from common.paths import Home
from tests.notify.conftest import CHAT, TOKEN, wait_until
from tests.notify.fake_telegram import FakeTelegram
from tests.support import pisentry_process

RNG = np.random.default_rng(5)
SCENE = RNG.integers(40, 200, (120, 160)).astype(np.uint8)


def live_frame() -> bytes:
    """The scene with fresh sensor noise: never two frames alike."""
    noisy = np.clip(SCENE.astype(np.int16) + RNG.integers(-3, 4, SCENE.shape), 0, 255)
    return np.vstack([noisy.astype(np.uint8), np.full((60, 160), 128, np.uint8)]).tobytes()


def send(pub: Publisher, seconds: float, frame: bytes | None = None) -> None:
    end = time.time() + seconds
    while time.time() < end:
        pub.publish(Frame, [frame if frame is not None else live_frame()], ts=time.time(),
                    width=160, height=120, format="yuv420")
        time.sleep(1 / 15)


def texts(telegram: FakeTelegram) -> list[str]:
    return [c.fields.get("caption", "") for c in telegram.of("sendPhoto")] + \
        [c.fields.get("text", "") for c in telegram.of("sendMessage")]


@pytest.fixture()
def system(tmp_path: Path) -> Any:
    telegram = FakeTelegram(TOKEN).start()
    home = Home(tmp_path / "home").ensure()
    config = {"detect": {"camera_health": {"hold_seconds": 1.0, "offline_seconds": 2.0}},
              "notify": {"telegram": {"enabled": True, "token": TOKEN, "chat_ids": [CHAT],
                                      "base_url": telegram.base_url, "cooldown_seconds": 0,
                                      "poll_timeout": 1}}}
    bus = Bus(parse_config(config), home)
    frames = bus.publisher("frames")
    watch = bus.subscriber(["detect"], [Heartbeat.TOPIC])
    try:
        with pisentry_process("notify", home=home, config=config), \
                pisentry_process("detect", home=home, config=config):
            wait_until(lambda: any(isinstance(m.header, Heartbeat)
                                   for m in watch.recv(0.2)), 30, "detect to start")
            wait_until(lambda: "notify started" in (home.root / "notify.out").read_text(),
                       30, "notify to start")
            time.sleep(1.0)
            send(frames, 4.0)  # a healthy camera: its references are made, nothing said
            yield frames, telegram
    finally:
        bus.close()
        telegram.stop()


def test_a_frozen_feed_sends_one_notice_and_one_all_clear(system: Any) -> None:
    frames, telegram = system
    assert texts(telegram) == []
    still = live_frame()
    send(frames, 4.0, still)  # the same frame over and over
    notice = telegram.wait_for("sendPhoto", 1, 10)[0]
    assert "frozen" in notice.fields["caption"] and notice.files  # with the picture
    send(frames, 5.0)  # moving again
    wait_until(lambda: any("all clear" in t for t in texts(telegram)), 10, "the all-clear")
    time.sleep(1.0)
    said = texts(telegram)
    assert len(said) == 2, said
    assert "all clear: the camera's picture moves again" in said[1]


def test_a_stopped_feed_sends_one_notice_and_one_all_clear(system: Any) -> None:
    frames, telegram = system
    time.sleep(4.0)  # no frames at all
    wait_until(lambda: any("sends no pictures" in t for t in texts(telegram)), 10, "the notice")
    time.sleep(1.0)
    assert len(texts(telegram)) == 1  # said once, however long it lasts
    send(frames, 2.0)
    wait_until(lambda: any("all clear" in t for t in texts(telegram)), 10, "the all-clear")
    time.sleep(1.0)
    said = texts(telegram)
    assert len(said) == 2 and "sends pictures again" in said[1], said
