"""Live events for open pages: motion, snapshots, recordings, arm state.

The service turns bus messages into small JSON-able dicts (``describe``) and
``publish``es them; each open WebSocket has a bounded queue, and a page that
cannot keep up loses its oldest items rather than slowing anyone down.
Runs on the event loop; no locks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import asdict
from typing import Any

from common.messages import ArmState, Header, Motion, Recording, Snapshot

QUEUE_SIZE = 100


def describe(header: Header) -> dict[str, Any] | None:
    """The page-facing view of a bus header, None for topics pages do not show."""
    if not isinstance(header, Motion | Snapshot | Recording | ArmState):
        return None
    body = asdict(header)
    body["topic"] = type(header).TOPIC.decode().rstrip("/")
    if isinstance(header, Recording):
        body.pop("path", None)  # server paths stay on the server
    return body


class EventFeed:
    def __init__(self, history: int = 50) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=history)
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, item: dict[str, Any]) -> None:
        self.recent.append(item)
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait(item)

    def listen(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(q)
        return q

    def forget(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.discard(q)

    @property
    def listeners(self) -> int:
        return len(self._queues)
