"""One self-test run: a known passer-by followed through the whole pipeline.

notify starts a run (daily at ``health.selftest_time``, or when asked from
the web or Telegram ``/selftest``) and sends ``SelfTest`` to capture, which
draws the passer-by, and to detect, which labels the event it makes as the
run's (``Motion.test_run``; never an intrusion). The run then notes when
each stage is seen, as seconds since it started:

    detect  the test event started
    record  its clip finished
    notify  the test message (silent, marked as a test) was delivered
    nas     the clip reached the NAS

A stage that is not set up (no channel to notify, no backup) is skipped. A
stage not reached within ``timeout`` seconds fails the run, and the report
names it ("self-test: no clip reached the NAS"). Pure logic: the service
feeds it what it sees and sends what it reports.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.messages import Motion, Recording, SelfTest
from common.paths import write_json_atomically

if TYPE_CHECKING:
    from services.notify.fanout import Fanout

log = logging.getLogger(__name__)

PASSER_SECONDS = 4.0

STAGES = ("detect", "record", "notify", "nas")
FAILURE = {"detect": "the passer-by was not detected",
           "record": "no clip was recorded",
           "notify": "no test message went out",
           "nas": "no clip reached the NAS"}


@dataclass
class SelfTestRun:
    run_id: str
    started: float
    timeout: float
    stages: tuple[str, ...]  # the stages set up on this camera, in order
    asked_by: str = ""
    event_id: str = ""
    clip_path: str = ""
    delays: dict[str, float] = field(default_factory=dict)
    failed: str = ""  # the first stage not reached in time
    ended: float = 0.0

    def reached(self, stage: str, now: float) -> None:
        if stage in self.stages and stage not in self.delays:
            self.delays[stage] = round(now - self.started, 2)

    def event(self, event_id: str, now: float) -> None:
        if not self.event_id:
            self.event_id = event_id
            self.reached("detect", now)

    def clip(self, path: str, now: float) -> None:
        if not self.clip_path:
            self.clip_path = path
            self.reached("record", now)

    @property
    def done(self) -> bool:
        return bool(self.ended)

    def check(self, now: float) -> bool:
        """True once the run is over (every stage reached, or the time is up)."""
        if self.ended:
            return True
        if all(s in self.delays for s in self.stages):
            self.ended = now
        elif now - self.started >= self.timeout:
            self.failed = next(s for s in self.stages if s not in self.delays)
            self.ended = now
        return bool(self.ended)

    def report(self) -> str:
        figures = ", ".join(f"{s} {self.delays[s]:.1f} s" for s in self.stages
                            if s in self.delays)
        skipped = [s for s in STAGES if s not in self.stages]
        tail = f" ({', '.join(skipped)} not set up)" if skipped else ""
        if self.failed:
            return (f"self-test FAILED: {FAILURE[self.failed]} within {self.timeout:.0f} s"
                    + (f" (reached: {figures})" if figures else "") + tail)
        return f"self-test passed: {figures}{tail}"

    def view(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.done and not self.failed
        out["report"] = self.report() if self.done else "running"
        return out


class SelfTester:
    """notify's end of the self-test: starts runs, feeds them what the bus
    and the backup show, sends the test message and the report. Called on
    the service thread only; ``send`` publishes a command on notify's bus."""

    def __init__(self, camera: str, timeout: float, state_file: Path, fanout: Fanout,
                 backup: Any, send: Callable[..., None],
                 tell: Callable[[str, str, str], None]) -> None:
        self.camera = camera
        self.timeout = timeout
        self.state_file = state_file
        self.fanout = fanout
        self.backup = backup
        self.send = send
        self.tell = tell
        self.run: SelfTestRun | None = None
        self._snapshot = b""
        self._delivery: tuple[str, Any] | None = None  # what says the test message arrived

    @property
    def running(self) -> SelfTestRun | None:
        return self.run if self.run is not None and not self.run.done else None

    def start(self, by: str, now: float) -> bool:
        """Start a run (False if one is running): capture draws, detect labels."""
        if self.running is not None:
            return False
        stages = ["detect", "record"]
        f = self.fanout
        if f.telegram is not None or f.mail is not None or f.mqtt is not None:
            stages.append("notify")
        if self.backup is not None:
            stages.append("nas")
        run_id = f"selftest-{int(now)}"
        self.run = SelfTestRun(run_id, now, self.timeout, tuple(stages), asked_by=by)
        self._snapshot, self._delivery = b"", None
        log.info("self-test %s started by %s (stages %s)", run_id, by, ", ".join(stages))
        self.send(SelfTest, run_id=run_id, seconds=PASSER_SECONDS)
        write_json_atomically(self.state_file, self.run.view())
        return True

    def on_motion(self, m: Motion, now: float) -> None:
        """A test event: followed, and labelled a test on MQTT; never an alert
        and never a hook (a siren must not sound for it)."""
        run = self.running
        if run is not None and m.test_run == run.run_id and m.phase == "start":
            run.event(m.event_id, now)
        if self.fanout.mqtt is not None:
            self.fanout.mqtt.publish_json("events", {
                "type": {"start": "new"}.get(m.phase, m.phase), "event_id": m.event_id,
                "camera": m.camera, "ts": m.ts, "labels": m.labels, "test": True,
                "alert": False})

    def on_snapshot(self, event_id: str, jpeg: bytes) -> bool:
        run = self.running
        if run is None or not event_id or event_id != run.event_id:
            return False
        self._snapshot = jpeg
        return True

    def on_clip(self, r: Recording, now: float) -> bool:
        """The test clip is finished: the test message goes out (silent, marked
        as a test) and the clip to the NAS, as a real event's would."""
        run = self.running
        if run is None or not r.event_id or r.event_id != run.event_id:
            return False
        run.clip(r.path, now)
        if self.backup is not None:
            self.backup.enqueue_clip(r.path, r.camera, r.start)
        text = (f"[TEST] self-test {run.run_id} on {r.camera}: a drawn passer-by, "
                f"not an intrusion ({r.duration:.0f} s clip)")
        f = self.fanout
        if f.telegram is not None:
            self._delivery = ("telegram", f.telegram.counters["tg_sent"])
            f.telegram.send_alert("", self._snapshot, text, True, now)
        elif f.mail is not None:
            self._delivery = ("mail", f.mail.submit(
                f.mail_one, f"[pisentry TEST] self-test on {r.camera}", text, self._snapshot))
        if f.mqtt is not None:
            f.mqtt.publish_json("selftest", {"run_id": run.run_id, "test": True, "text": text})
            if self._delivery is None:
                run.reached("notify", now)
        return True

    def tick(self, now: float) -> None:
        uploaded = []
        if self.backup is not None:
            while True:
                try:
                    uploaded.append(self.backup.uploaded.get_nowait())
                except queue.Empty:
                    break
        run = self.running
        if run is None:
            return
        if run.clip_path and run.clip_path in uploaded:
            run.reached("nas", now)
        if self._delivery is not None and "notify" not in run.delays:
            kind, handle = self._delivery
            delivered = (self.fanout.telegram.counters["tg_sent"] > handle if kind == "telegram"
                         else handle.done() and handle.result())
            if delivered:
                run.reached("notify", now)
        if not run.check(now):
            return
        report = f"{self.camera}: {run.report()}"
        write_json_atomically(self.state_file, run.view())
        if run.failed:  # alerted like any notice, sound and all
            self.tell("selftest", report, "selftest")
        else:
            log.info("%s", report)
            if self.fanout.telegram is not None:
                self.fanout.telegram.send_text(self.fanout.cfg.telegram.chat_ids, report,
                                               silent=True)


def daily_due(at: str, now: float, last_day: str) -> str:
    """The local day to remember if the daily run's minute ``at`` (HH:MM) is
    now and it has not run today, else ""."""
    if not at:
        return ""
    t = time.localtime(now)
    day = time.strftime("%Y-%m-%d", t)
    return day if day != last_day and f"{t.tm_hour:02d}:{t.tm_min:02d}" == at else ""
