"""Putting a saved config into effect: restart only the services whose
sections changed, through supervisord; if one of them fails its setup, put
the previous config back and restart them on it.

A restarted service has come up when a heartbeat from its new pid arrives
(a worker sends its first one after ``setup``); it has failed when
supervisord sees the new process end (a setup error exits 2) or no
heartbeat comes in time. Its one-line error is the reason
``common.supervisor_client`` reads from the tail of its log.

The web service cannot watch itself restart: a change to ``[web]`` is saved,
answered, and then web is restarted by a separate short-lived
``supervisorctl restart web`` (its own stop would end a call made from here).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import Config
from common.config_store import ConfigStore, changed_sections
from common.config_view import SERVICES
from common.paths import Home
from common.supervisor_client import (
    CONF_NAME,
    DOWN_STATES,
    ProcessInfo,
    SupervisorClient,
    SupervisorError,
    SupervisorUnavailable,
)
from services.web.health import HealthBoard

log = logging.getLogger(__name__)

# Sections every service reads; any other section is its service's own.
SHARED_SECTIONS = ("general", "bus", "health")


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
        self.supervisor = SupervisorClient.for_home(home, timeout=30.0)
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
                running = {p.name for p in await asyncio.to_thread(
                    self.supervisor.processes, False)}
            except (SupervisorUnavailable, SupervisorError) as exc:
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
        supervisorctl = Path(sys.executable).with_name("supervisorctl")
        subprocess.Popen([str(supervisorctl), "-c", str(self.home.run_dir / CONF_NAME),
                          "restart", "web"], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)

    async def _restart(self, services: list[str]) -> dict[str, str]:
        """Restart ``services``; service -> its one-line error for each that did not come up."""
        await asyncio.to_thread(self.supervisor.stop, *services)
        await asyncio.to_thread(self.supervisor.start, *services, wait=False)
        results = await asyncio.gather(*(self._came_up(name) for name in services))
        return {name: why for name, why in zip(services, results, strict=True) if why}

    def _process(self, name: str) -> ProcessInfo:
        # A client each: these run in threads side by side, and a client's
        # connection is not for two threads at once.
        with SupervisorClient.for_home(self.home, timeout=30.0) as client:
            return client.process(name)

    async def _came_up(self, name: str) -> str:
        """"" once ``name`` runs its new process past setup, else why not."""
        deadline = time.monotonic() + self.setup_timeout
        first_pid = 0
        while time.monotonic() < deadline:
            info = await asyncio.to_thread(self._process, name)
            if info.state in DOWN_STATES or (first_pid and info.pid not in (0, first_pid)):
                return info.reason or info.description
            if info.pid:
                first_pid = first_pid or info.pid
                if any(h.service == name and h.pid == info.pid
                       for h in self.board.services.values()):
                    return ""
            await asyncio.sleep(0.2)
        return f"no heartbeat within {self.setup_timeout:.0f} s"
