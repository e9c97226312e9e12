"""Pi health through a real notify process: a throttled-flag file that changes
raises one alert and one all-clear on (a fake, real-HTTP) Telegram."""

from __future__ import annotations

import time
from pathlib import Path

from common.paths import Home
from tests.notify.conftest import telegram_section, wait_until
from tests.notify.fake_telegram import FakeTelegram
from tests.support import pisentry_process


def test_a_throttled_file_that_changes_raises_one_alert_and_one_all_clear(
        telegram: FakeTelegram, tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    flags = tmp_path / "get_throttled"
    flags.write_text("0\n")
    config = {"notify": {"telegram": telegram_section(telegram)},
              "health": {"throttled_path": str(flags), "thermal_path": "",
                         "check_seconds": 1}}
    with pisentry_process("notify", home=home, config=config) as proc:
        log = home.root / "notify.out"
        wait_until(lambda: "notify started" in log.read_text(), 30, "notify to start")
        time.sleep(1.5)  # a few checks of the healthy word: nothing said
        assert telegram.of("sendMessage") == []
        flags.write_text("50005\n")  # under-voltage and throttled now (and since boot)
        alert = telegram.wait_for("sendMessage", 1, 10)[0]
        assert "under-voltage" in alert.fields["text"] and "0x50005" in alert.fields["text"]
        time.sleep(2.5)  # still under-powered: no second alert
        assert len(telegram.of("sendMessage")) == 1
        flags.write_text("50000\n")  # over now; the since-boot bits stay until a reboot
        calls = telegram.wait_for("sendMessage", 2, 10)
        assert calls[1].fields["text"].startswith("cam1: all clear: power supply too weak")
        time.sleep(2.5)
        assert len(telegram.of("sendMessage")) == 2
        assert proc.poll() is None
