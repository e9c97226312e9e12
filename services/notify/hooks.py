"""User commands on event start, event end and finished recordings.

A beep on each event, a script that post-processes each clip... A hook runs
in its own process group through ``/bin/sh -c``; what it is about arrives in
environment variables (``PISENTRY_EVENT``, ``PISENTRY_CAMERA``,
``PISENTRY_PHASE``, ``PISENTRY_PATH``, ``PISENTRY_LABELS``, ``PISENTRY_ZONES``),
never pasted into the command line, so a crafted value cannot inject shell
code. The environment is those variables plus the few a shell needs
(``HOOK_ENV_KEPT``), nothing else of ours: the service's own environment holds
secrets (``PISENTRY_TELEGRAM_TOKEN``, ``PISENTRY_SMTP_PASSWORD``...) that a
user's script has no business seeing. Starting one never waits: ``poll`` reaps
finished hooks and kills those past the timeout. Beyond ``max_running`` hooks at
once, new ones are skipped and counted rather than piling up.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

HOOK_ENV_KEPT = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE",
                 "TZ", "TMPDIR")


@dataclass
class _Running:
    name: str
    proc: subprocess.Popen[bytes]
    deadline: float


class HookRunner:
    def __init__(self, timeout: float, max_running: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.max_running = max_running
        self.clock = clock
        self.running: list[_Running] = []
        self.counters = {"hooks_run": 0, "hooks_failed": 0, "hooks_killed": 0,
                         "hooks_skipped": 0}

    def start(self, name: str, command: str, env: dict[str, str]) -> bool:
        if not command:
            return False
        self.poll()
        if len(self.running) >= self.max_running:
            self.counters["hooks_skipped"] += 1
            log.warning("hook %s skipped: %d hooks still running", name, len(self.running))
            return False
        full_env = {k: os.environ[k] for k in HOOK_ENV_KEPT if k in os.environ}
        full_env.update(env)
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", command], env=full_env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            self.counters["hooks_failed"] += 1
            log.error("hook %s cannot start: %s", name, exc)
            return False
        self.counters["hooks_run"] += 1
        self.running.append(_Running(name, proc, self.clock() + self.timeout))
        return True

    def poll(self) -> None:
        now = self.clock()
        still: list[_Running] = []
        for hook in self.running:
            rc = hook.proc.poll()
            if rc is None and now >= hook.deadline:
                self.counters["hooks_killed"] += 1
                log.warning("hook %s ran past %.0f s; killed", hook.name, self.timeout)
                try:
                    os.killpg(hook.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                hook.proc.wait()
            elif rc is None:
                still.append(hook)
            elif rc != 0:
                self.counters["hooks_failed"] += 1
                log.warning("hook %s exited with %d", hook.name, rc)
        self.running = still

    def stop(self) -> None:
        for hook in self.running:
            try:
                os.killpg(hook.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.running.clear()
