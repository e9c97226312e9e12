"""Putting a saved config into effect: restart only the services whose
sections changed, through supervisord; if one of them fails its setup, put
the previous config back and restart them on it.

A restarted service has come up when a heartbeat from its new pid arrives
(a worker sends its first one after ``setup``); it has failed when
supervisord sees the new process end (a setup error exits 2) or no
heartbeat comes in time. Its one-line error is the "cannot start" line from
the tail of its log, read through supervisord too.

The web service cannot watch itself restart: a change to ``[web]`` is saved,
answered, and then web is restarted by a separate short-lived process
(``python -m common.supervisor_rpc restart web``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from common.config import Config
from common.config_store import ConfigStore, changed_sections
from common.config_view import SERVICES
from common.paths import Home
from common.supervisor_rpc import FAILED_STATES, Supervisor, SupervisorError
from services.web.health import HealthBoard

log = logging.getLogger(__name__)

# Sections every service reads; any other section is its service's own.
SHARED_SECTIONS = ("general", "bus", "health")
SETUP_LINE = re.compile(r"(\S+ cannot start: .*|pisentry: config error: .*)$")


def services_for(sections: list[str]) -> list[str]:
    if any(s in SHARED_SECTIONS for s in sections):
        return list(SERVICES)
    return [s for s in SERVICES if s in sections]


@dataclass
class Outcome:
    """What a save did; the JSON the page gets."""

    ok: bool
    sections: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    restarting_later: list[str] = field(default_factory=list)  # web, after the answer
    not_running: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # service -> its one-line error
    rolled_back: bool = False
    rollback_failed: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Applier:
    def __init__(self, store: ConfigStore, home: Home, board: HealthBoard,
                 setup_timeout: float = 45.0) -> None:
        self.store = store
        self.home = home
        self.board = board
        self.supervisor = Supervisor.of(home)
        self.setup_timeout = setup_timeout
        self.lock = asyncio.Lock()  # one save at a time

    async def save_and_apply(self, old: Config, new: Config, text: str, by: str) -> Outcome:
        async with self.lock:
            sections = changed_sections(old, new)
            outcome = Outcome(ok=True, sections=sections)
            if not sections:
                return outcome
            previous = self.store.read_text()
            self.store.save(text, by, sections)
            log.info("config saved by %s: %s changed", by, ", ".join(sections))
            wanted = services_for(sections)
            try:
                running = await asyncio.to_thread(self.supervisor.processes)
            except SupervisorError as exc:
                # Not under `pisentry run` (a service started by hand): saved only.
                log.warning("config saved but not applied: %s", exc)
                outcome.not_running = wanted
                return outcome
            outcome.not_running = [s for s in wanted if s not in running]
            targets = [s for s in wanted if s in running and s != "web"]
            if "web" in wanted and "web" in running:
                outcome.restarting_later = ["web"]
            failed = await self._restart(targets)
            outcome.restarted = targets
            if not failed:
                return outcome
            outcome.ok, outcome.failed = False, failed
            outcome.restarting_later = []
            log.warning("config change failed in %s; putting the previous config back",
                        ", ".join(failed))
            self.store.save(previous, f"rollback ({', '.join(failed)} failed)", sections)
            outcome.rolled_back = True
            outcome.rollback_failed = await self._restart(targets)
            return outcome

    def restart_web_later(self) -> None:
        """web restarts itself from a separate process, after this answer is sent."""
        env = {**os.environ, "PISENTRY_HOME": str(self.home.root)}
        subprocess.Popen([sys.executable, "-m", "common.supervisor_rpc", "restart", "web"],
                         env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    async def _restart(self, services: list[str]) -> dict[str, str]:
        """Restart ``services``; service -> error line for each that did not come up."""
        for name in services:
            await asyncio.to_thread(self.supervisor.stop, name)
        for name in services:
            await asyncio.to_thread(self.supervisor.start, name)
        results = await asyncio.gather(*(self._came_up(name) for name in services))
        return {name: why for name, why in zip(services, results, strict=True) if why}

    async def _came_up(self, name: str) -> str:
        """"" once ``name`` runs its new process past setup, else why not."""
        deadline = time.monotonic() + self.setup_timeout
        first_pid = 0
        while time.monotonic() < deadline:
            info = await asyncio.to_thread(self.supervisor.process, name)
            if info.state in FAILED_STATES or (first_pid and info.pid not in (0, first_pid)):
                return await self._error_line(name, info.description)
            if info.pid:
                first_pid = first_pid or info.pid
                if any(h.service == name and h.pid == info.pid
                       for h in self.board.services.values()):
                    return ""
            await asyncio.sleep(0.2)
        return await self._error_line(name, f"no heartbeat within {self.setup_timeout:.0f} s")

    async def _error_line(self, name: str, fallback: str) -> str:
        try:
            tail = await asyncio.to_thread(self.supervisor.log_tail, name)
        except SupervisorError:
            return fallback
        for line in reversed(tail.splitlines()):
            m = SETUP_LINE.search(line)
            if m:
                return m.group(1)
        return fallback
