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

Two hooks for services that are more than a bus loop:

- a thread of the service that produces items (capture's camera reader) puts
  them in an ``Inbox``; ``wait_on(inbox, handler)`` makes the loop wake for
  them as it wakes for a socket, so nothing polls;
- ``companion()`` returns a coroutine to run beside the loop (web's HTTP
  server): the loop then runs on asyncio, awaiting the same sockets, and when
  either ends the other does.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import zmq

from common.bus import Bus, Message, Publisher, Subscriber
from common.lifeline import die_with_parent
from common.messages import Heartbeat
from common.paths import Home
from common.writebudget import process_write_bytes

if TYPE_CHECKING:
    from common.config import Config

log = logging.getLogger(__name__)

POLL_TIMEOUT = 0.1
HEARTBEAT_PERIOD = 1.0


class SetupError(RuntimeError):
    """Raised by ``setup`` for a problem the user must fix (exit code 2)."""


T = TypeVar("T")


class Inbox(Generic[T]):
    """Items handed from one of the service's threads to its worker loop,
    newest kept: beyond ``keep`` waiting, the oldest is dropped and counted
    (``replaced``). ``put`` is for the producing thread; the loop waits on the
    inbox's file descriptor beside its sockets (``Worker.wait_on``)."""

    def __init__(self, keep: int) -> None:
        self._items: collections.deque[T] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self.replaced = 0

    def fileno(self) -> int:
        return self._read

    def put(self, item: T) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.replaced += 1
            self._items.append(item)
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already: the loop is awake

    def take(self) -> list[T]:
        """Everything waiting, oldest first."""
        try:
            # One read: the producer writes a byte a put and the loop takes often,
            # so this is all of them (any left over only wake the loop once more).
            os.read(self._read, 4096)
        except BlockingIOError:
            pass
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def wait(self, timeout: float) -> bool:
        """For callers without a loop (tests): True once something is waiting."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._items:
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([self._read], [], [], min(left, 0.05))

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


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
        self._inboxes: list[tuple[Inbox[Any], Callable[[Any], None]]] = []
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

    def heartbeat_fields(self) -> dict[str, Any]:
        """Typed ``Heartbeat`` fields of this service (detect's profile)."""
        return {}

    def status_counters(self) -> dict[str, Any]:
        """Service-specific figures added to each heartbeat."""
        return {}

    def companion(self) -> Coroutine[Any, Any, None] | None:
        """A coroutine to run beside the bus loop until either ends (web's
        HTTP server), or None for a plain loop."""
        return None

    # -- helpers ----------------------------------------------------------------
    def subscribe(self, names: list[str] | tuple[str, ...], topics: list[bytes], **kw: Any
                  ) -> Subscriber:
        sub = self.bus.subscriber(names, topics, **kw)
        self._subscribers.append(sub)
        self._poller.register(sub.socket, zmq.POLLIN)
        return sub

    def wait_on(self, inbox: Inbox[T], handler: Callable[[T], None]) -> None:
        """Wake the loop for ``inbox`` and ``handle`` each item with ``handler``
        (a failure is counted, as for a message)."""
        self._inboxes.append((inbox, handler))
        self._poller.register(inbox.fileno(), zmq.POLLIN)

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
            if os.environ.get("SUPERVISOR_ENABLED"):
                # supervisord killed (even with SIGKILL) stops this service too,
                # rather than leaving it running with nobody to restart it.
                die_with_parent(signal.SIGTERM, parent_name="supervisord")
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
        """Run until stopped, then drain; the exit code."""
        companion = self.companion()
        code = 0
        if companion is None:
            self.loop()
        else:
            import asyncio  # only for a service with a companion: the others never load it

            code = asyncio.run(self._serve_with(companion))
        if not self.force_exit:
            self.drain()
        return code

    def loop(self) -> None:
        wait = POLL_TIMEOUT
        while not self.stop_requested:
            self._step(dict(self._poller.poll(int(wait * 1000))))
            wait = self._after_step()

    async def _serve_with(self, companion: Coroutine[Any, Any, None]) -> int:
        import asyncio

        bus = asyncio.create_task(self._loop_async())
        other = asyncio.create_task(companion)
        done, _ = await asyncio.wait({bus, other}, return_when=asyncio.FIRST_COMPLETED)
        self.stop_requested = True  # whichever ended first (a signal, a crash) ends the other
        await asyncio.gather(bus, other, return_exceptions=True)
        failed = [t.exception() for t in done if t.exception() is not None]
        for exc in failed:
            log.error("%s: %s", self.name, exc)
        return 1 if failed else 0

    async def _loop_async(self) -> None:
        """``loop`` on asyncio: the same sockets, awaited instead of blocked on."""
        import zmq.asyncio

        poller = zmq.asyncio.Poller()
        for sub in self._subscribers:
            poller.register(sub.socket, zmq.POLLIN)
        for inbox, _ in self._inboxes:
            poller.register(inbox.fileno(), zmq.POLLIN)
        wait = POLL_TIMEOUT
        while not self.stop_requested:
            self._step(dict(await poller.poll(int(wait * 1000))))
            wait = self._after_step()

    def _step(self, ready: dict[Any, int]) -> None:
        for sub in self._subscribers:
            if sub.socket in ready:
                self.dispatch(sub)
        for inbox, handler in self._inboxes:
            if inbox.fileno() in ready:
                for item in inbox.take():
                    try:
                        handler(item)
                    except Exception as exc:  # noqa: BLE001 - as for a bad message
                        self.record_error(f"handling {type(item).__name__}", exc)

    def _after_step(self) -> float:
        """tick and heartbeat; the next wait."""
        now = self.clock()
        try:
            asked = self.tick(now)
        except Exception as exc:  # noqa: BLE001 - counted; a worker outlives its bugs
            self.record_error("tick", exc)
            asked = None
        if now >= self._next_heartbeat:
            self.heartbeat(now)
        return POLL_TIMEOUT if asked is None else max(0.0, min(asked, POLL_TIMEOUT))

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
        counters["write_bytes"] = process_write_bytes()  # what this service costs the card
        try:
            counters.update(self.status_counters())
        except Exception as exc:  # noqa: BLE001 - a heartbeat must go out regardless
            self.record_error("status_counters", exc)
        if self.degraded:
            counters["degraded"] = self.degraded
        try:
            fields = self.heartbeat_fields()
        except Exception as exc:  # noqa: BLE001 - as for the counters
            self.record_error("heartbeat_fields", exc)
            fields = {}
        self.pub.publish(Heartbeat, ts=now, service=self.name, pid=os.getpid(),
                         started=self.started,
                         status=status or ("degraded" if self.degraded else "ok"),
                         counters=counters, **fields)

    def _close(self) -> None:
        try:
            self.teardown()
        except Exception as exc:  # noqa: BLE001 - sockets must close regardless
            log.warning("%s teardown: %s", self.name, exc)
        self.bus.close()
