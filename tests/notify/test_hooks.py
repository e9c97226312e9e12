"""User hooks: environment, time limit, never delaying the caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from common.messages import Motion, Recording
from services.notify.hooks import HookRunner
from tests.notify.conftest import Harness, wait_until


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
    assert time.monotonic() - began < 1.0  # started, not waited for (it sleeps 30 s)
    assert not runner.start("second", "true", {})  # over max_running: skipped
    wait_until(lambda: (runner.poll(), runner.counters["hooks_killed"] == 1)[1], 3, "kill")
    assert runner.running == [] and runner.counters["hooks_skipped"] == 1
