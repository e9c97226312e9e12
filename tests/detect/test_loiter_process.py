"""Loitering through real detect and notify processes: one Telegram alert,
once something has stayed in the zone for its time, saying so."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from common.bus import Bus
from common.config import parse_config
from common.messages import Frame, Heartbeat, Motion
from common.paths import Home
from tests.notify.conftest import CHAT, TOKEN, wait_until
from tests.notify.fake_telegram import FakeTelegram
from tests.support import pisentry_process

PORCH = {"name": "Porch", "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]],
         "loiter_seconds": 2.0, "required": True}


def frame(i: int, someone: bool) -> bytes:
    luma = np.full((120, 160), 90, np.uint8)
    luma[::8] = 60  # some texture, so a bright figure is not taken for a change of light
    if someone:  # shuffling about on the porch
        x = 10 + (i % 12) * 2
        luma[40:90, x:x + 20] = 200
    return np.vstack([luma, np.full((60, 160), 128, np.uint8)]).tobytes()


def test_a_loitering_zone_alerts_once_after_its_time(tmp_path: Path) -> None:
    telegram = FakeTelegram(TOKEN).start()
    home = Home(tmp_path / "home").ensure()
    config = {"detect": {"zones": [PORCH], "quiet_seconds": 10.0},
              "notify": {"telegram": {"enabled": True, "token": TOKEN, "chat_ids": [CHAT],
                                      "base_url": telegram.base_url, "cooldown_seconds": 0,
                                      "poll_timeout": 1}}}
    bus = Bus(parse_config(config), home)
    frames = bus.publisher("frames")
    watch = bus.subscriber(["detect"], [Motion.TOPIC, Heartbeat.TOPIC])
    try:
        with pisentry_process("notify", home=home, config=config), \
                pisentry_process("detect", home=home, config=config):
            wait_until(lambda: any(isinstance(m.header, Heartbeat)
                                   for m in watch.recv(0.2)), 30, "detect to start")
            wait_until(lambda: "notify started" in (home.root / "notify.out").read_text(),
                       30, "notify to start")
            time.sleep(1.0)  # subscriptions settle
            motions: list[Motion] = []
            arrived = 0.0
            for i in range(15 * 6):  # 6 s at 15 fps; the figure from 1 s on
                now = time.time()
                if i == 15:
                    arrived = now
                frames.publish(Frame, [frame(i, i >= 15)], ts=now, width=160, height=120,
                               format="yuv420")
                motions += [m.header for m in watch.recv(1 / 15)
                            if isinstance(m.header, Motion)]
            assert motions and motions[0].phase == "start" and not motions[0].alert
            alerting = [m for m in motions if m.alert]
            assert alerting, motions
            assert alerting[0].loitering.get("Porch", 0) >= 2.0
            assert alerting[0].ts - arrived >= 2.0
            photo = telegram.wait_for("sendPhoto", 1, 10)
            time.sleep(1.5)
            assert len(telegram.of("sendPhoto")) == 1  # once, however long they stay
            assert "in Porch for 2 s" in photo[0].fields["caption"]
    finally:
        bus.close()
        telegram.stop()
