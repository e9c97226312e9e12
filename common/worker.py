"""The lifecycle every pisentry service runs.

    setup()      build sockets, open devices; raise to fail fast with a clear error
    loop         wait on subscribers (bounded timeout) -> handle(msg) for each
                 message, then tick(now); a heartbeat every second
    drain()      last writes (flush a clip, finish an upload) after stop is asked
    teardown()   close everything

The signal handler only sets ``stop_requested``; the loop notices within one
poll timeout (at most 0.1 s) and the service is gone within 2 s. A second
signal skips the drain. An exception from ``handle`` or ``tick`` is counted,
logged and survived: only ``setup`` failures end the process, so supervisord
sees real crashes only.

Subclasses set ``name`` (the service, also the bus endpoint their heartbeats
and other messages go out on) and receive the config, home, bus and clock
through the constructor, so tests can drive them without patching.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from common.bus import Bus, Message, Publisher, Subscriber
from common.messages import Heartbeat
from common.paths import Home

if TYPE_CHECKING:
    from common.config import Config

log = logging.getLogger(__name__)

POLL_TIMEOUT = 0.1
HEARTBEAT_PERIOD = 1.0


class SetupError(RuntimeError):
    """Raised by ``setup`` for a problem the user must fix (exit code 2)."""


class Worker:
    name = "worker"

    def __init__(self, config: Config, home: Home, bus: Bus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.home = home
        self.bus = bus or Bus(config, home)
        self.clock = clock
        self.camera = config.general.camera
        self.stop_requested = False
        self.force_exit = False
        self.started = clock()
        self.pub: Publisher | None = None
        self.counters: dict[str, Any] = {"in": 0, "out": 0, "dropped": 0, "errors": 0,
                                         "last_error": ""}
        self.degraded = ""  # a reason shown in the heartbeat, "" when all is well
        self._subscribers: list[Subscriber] = []
        self._poller = zmq.Poller()
        self._next_heartbeat = 0.0

    # -- hooks for subclasses -------------------------------------------------
    def setup(self) -> None:
        """Create subscribers (``self.subscribe``) and open devices."""

    def handle(self, msg: Message) -> None:
        """One message from a subscriber."""

    def tick(self, now: float) -> float | None:
        """Periodic work after each wait; return the longest the next wait may
        last (seconds), or None for the default."""
        return None

    def drain(self) -> None:
        """Finish what is in flight before teardown."""

    def teardown(self) -> None:
        """Close devices; sockets are closed by the base."""

    def status_counters(self) -> dict[str, Any]:
        """Service-specific figures added to each heartbeat."""
        return {}

    # -- helpers ----------------------------------------------------------------
    def subscribe(self, names: list[str] | tuple[str, ...], topics: list[bytes], **kw: Any
                  ) -> Subscriber:
        sub = self.bus.subscriber(names, topics, **kw)
        self._subscribers.append(sub)
        self._poller.register(sub.socket, zmq.POLLIN)
        return sub

    def record_error(self, what: str, exc: BaseException) -> None:
        self.counters["errors"] += 1
        self.counters["last_error"] = f"{what}: {exc}"[:200]
        if self.counters["errors"] <= 20:  # enough to diagnose, not enough to fill a card
            log.exception("%s failed", what)

    def request_stop(self, *_: Any) -> None:
        if self.stop_requested:
            self.force_exit = True
        self.stop_requested = True

    # -- lifecycle ---------------------------------------------------------------
    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():  # tests run workers in threads
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        try:
            self.home.ensure()
            self.pub = self.bus.publisher(self.name)
            self.setup()
        except Exception as exc:  # noqa: BLE001 - fail fast, with one clear line
            log.error("%s cannot start: %s", self.name, exc)
            self._close()
            return 2
        log.info("%s started (pid %d)", self.name, os.getpid())
        try:
            code = self.serve()
        finally:
            self.heartbeat(self.clock(), status="stopping")
            self._close()
        log.info("%s stopped", self.name)
        return code

    def serve(self) -> int:
        """Run until stopped, then drain; the exit code. A service with an
        event loop of its own (the web's asyncio) replaces this."""
        self.loop()
        if not self.force_exit:
            self.drain()
        return 0

    def loop(self) -> None:
        wait = POLL_TIMEOUT
        while not self.stop_requested:
            ready = dict(self._poller.poll(int(wait * 1000)))
            for sub in self._subscribers:
                if sub.socket in ready:
                    self.dispatch(sub)
            now = self.clock()
            try:
                asked = self.tick(now)
            except Exception as exc:  # noqa: BLE001 - counted; a worker outlives its bugs
                self.record_error("tick", exc)
                asked = None
            wait = POLL_TIMEOUT if asked is None else max(0.0, min(asked, POLL_TIMEOUT))
            if now >= self._next_heartbeat:
                self.heartbeat(now)

    def dispatch(self, sub: Subscriber) -> None:
        """``handle`` every message waiting on ``sub``; a failure is counted,
        never raised."""
        for msg in sub.read():
            self.counters["in"] += 1
            try:
                self.handle(msg)
            except Exception as exc:  # noqa: BLE001 - a bad message never kills a worker
                self.record_error(f"handling {msg.topic.decode()}", exc)

    def heartbeat(self, now: float, status: str | None = None) -> None:
        if self.pub is None:
            return
        self._next_heartbeat = now + HEARTBEAT_PERIOD
        # The service's own counts plus what the bus saw: a service that drops
        # or sends something itself adds to the same figures.
        counters = dict(self.counters)
        counters["out"] += self.bus.published()
        counters["dropped"] += sum(s.stats.gaps + s.stats.stale for s in self._subscribers)
        counters["malformed"] = sum(s.stats.malformed for s in self._subscribers)
        try:
            counters.update(self.status_counters())
        except Exception as exc:  # noqa: BLE001 - a heartbeat must go out regardless
            self.record_error("status_counters", exc)
        if self.degraded:
            counters["degraded"] = self.degraded
        self.pub.publish(Heartbeat, ts=now, service=self.name, pid=os.getpid(),
                         started=self.started,
                         status=status or ("degraded" if self.degraded else "ok"),
                         counters=counters)

    def _close(self) -> None:
        try:
            self.teardown()
        except Exception as exc:  # noqa: BLE001 - sockets must close regardless
            log.warning("%s teardown: %s", self.name, exc)
        self.bus.close()
