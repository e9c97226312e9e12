"""User hooks: environment, time limit, never delaying the caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from common.bus import Bus
from common.config import parse_config
from common.messages import Heartbeat, Motion, Recording
from common.paths import Home
from services.notify.hooks import HookRunner
from tests.notify.conftest import Harness, wait_until
from tests.support import pisentry_process

SECRETS = {"PISENTRY_TELEGRAM_TOKEN": "123456:hook-must-not-see-this",
           "PISENTRY_SMTP_PASSWORD": "smtp-password-hook-must-not-see",
           "PISENTRY_MQTT_PASSWORD": "mqtt-password-hook-must-not-see",
           "PISENTRY_WEB_API_KEY": "web-api-key-hook-must-not-see-0123456789",
           "AWS_SECRET_ACCESS_KEY": "whatever-else-the-service-was-given"}


def hook_environment(home: Home, env: dict[str, str], timeout: float = 20.0
                     ) -> dict[str, str]:
    """The environment an ``on_event_start`` hook of a real notify process
    (started with ``env`` added to ours) sees, as the hook itself dumps it."""
    dump = home.root / "hook-env.txt"
    raw = {"general": {"services": ["notify"]},
           "notify": {"hooks": {"on_event_start": f"env -0 > {dump}.part && mv {dump}.part "
                                                   f"{dump}"}}}
    bus = Bus(parse_config(raw), home)
    detect = bus.publisher("detect")
    beats = bus.subscriber(["notify"], [Heartbeat.TOPIC])
    try:
        with pisentry_process("notify", home=home, config=raw, env=env) as proc:
            deadline = time.monotonic() + timeout
            while not dump.exists():
                assert proc.poll() is None, (home.root / "notify.out").read_text()
                assert time.monotonic() < deadline, "the hook never ran"
                beats.recv(0.2)
                detect.publish(Motion, ts=time.time(), event_id="env-dump", phase="start")
    finally:
        bus.close()
    pairs = (item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
    return dict(pairs)


def test_a_hook_sees_its_event_but_none_of_the_services_secrets(home: Home) -> None:
    seen = hook_environment(home, SECRETS)
    assert seen["PISENTRY_EVENT"] == "env-dump" and seen["PISENTRY_PHASE"] == "start"
    assert "PATH" in seen
    leaked = {k for k, v in SECRETS.items() if k in seen or v in "\n".join(seen.values())}
    assert not leaked, f"a hook saw {sorted(leaked)}"
    assert "PISENTRY_HOME" not in seen  # nothing of the service's own but the event


def test_hooks_run_with_event_details(tmp_path: Path,
                                      harness_factory: Callable[..., Harness]) -> None:
    out = tmp_path / "hooks.log"
    line = f'echo "$PISENTRY_PHASE $PISENTRY_EVENT $PISENTRY_LABELS $PISENTRY_PATH" >> {out}'
    h = harness_factory({"hooks": {"on_event_start": line, "on_event_end": line,
                                   "on_recording": line}})
    ts = time.time()
    # A hostile-looking event id is data, not shell code.
    h.detect.publish(Motion, ts=ts, event_id="e1;touch pwned", phase="start", labels=["cat"])
    h.detect.publish(Motion, ts=ts, event_id="e1;touch pwned", phase="end")
    h.record.publish(Recording, ts=ts, phase="finished", path="/r/e1.mp4", start=ts,
                     event_id="e1")
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 3, 5, "hooks")
    lines = sorted(out.read_text().splitlines())
    assert lines == ["end e1;touch pwned  ", "recording e1  /r/e1.mp4",
                     "start e1;touch pwned cat "]
    assert not (Path.cwd() / "pwned").exists()


def test_slow_hook_is_killed_and_never_blocks(tmp_path: Path) -> None:
    runner = HookRunner(timeout=0.3, max_running=1)
    began = time.monotonic()
    assert runner.start("slow", "sleep 30", {})
    assert time.monotonic() - began < 10  # started, not waited for (it sleeps 30 s)
    assert not runner.start("second", "true", {})  # over max_running: skipped
    wait_until(lambda: (runner.poll(), runner.counters["hooks_killed"] == 1)[1], 3, "kill")
    assert runner.running == [] and runner.counters["hooks_skipped"] == 1
