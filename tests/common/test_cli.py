"""The command line as users and other tools use it, against real processes."""

import json
import signal
import time

from tests.support import pisentry, pisentry_process

SMALL = {"general": {"services": ["capture"]},
         "capture": {"width": 320, "height": 240, "fps": 10}}


def _wait_alive(home, config_path, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pisentry("status", "--config", str(config_path), home=home).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError("capture never became alive")


def test_tap_json_status_and_a_clean_sigterm(home):
    with pisentry_process("capture", home=home, config=SMALL) as proc:
        config_path = home.root / "capture.toml"
        _wait_alive(home, config_path)

        tapped = pisentry("tap", "h264/", "--json", "--seconds", "2", "--config",
                          str(config_path), home=home)
        lines = [json.loads(line) for line in tapped.stdout.splitlines()]
        assert tapped.returncode == 0 and len(lines) >= 10
        assert {line["topic"] for line in lines} == {"h264/"}
        first = lines[0]
        assert set(first) == {"topic", "header", "sizes"}
        assert first["header"]["camera"] == "cam1" and isinstance(first["header"]["pts"], int)
        assert len(first["sizes"]) == 1 and first["sizes"][0] > 0

        status = pisentry("status", "--json", "--config", str(config_path), home=home)
        report = json.loads(status.stdout)
        assert status.returncode == 0 and report["healthy"]
        capture = report["services"][0]
        assert capture["service"] == "capture" and capture["counters"]["fps"] > 5

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 2.0

    status = pisentry("status", "--config", str(config_path), home=home)
    assert status.returncode == 1 and "capture" in status.stdout
    assert "no heartbeat" in status.stdout


def test_a_service_that_cannot_start_says_why_and_exits_2(home):
    bad = {"capture": {"source": "file", "path": str(home.root / "missing.mp4")}}
    with pisentry_process("capture", home=home, config=bad) as proc:
        assert proc.wait(timeout=20) == 2
    log = (home.root / "capture.out").read_text()
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "missing.mp4: no such file or folder" in errors[0]
