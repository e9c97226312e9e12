"""A watch from outside: which cameras stopped sending heartbeats, and when
they came back.

Only something off the camera can notice that the camera went quiet (a thief
pulling the plug, a power cut, a crash of the whole process tree). A hub's
notify and ``pisentry watch`` on a NAS feed every heartbeat and snapshot they
receive from other cameras into a ``Watch`` and act on what ``check``
returns: one ``Gone`` when a camera has been silent for ``timeout`` seconds
(with the last snapshot the watcher had of it) and one ``Back`` when it is
heard again (with how long it was gone). Times are the watcher's own receive
clock, never the camera's ``ts``: two hosts' clocks may disagree by more than
the timeout.

Pure logic: no sockets here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gone:
    camera: str
    last_seen: float  # watcher's clock; the watch's start for a camera never heard
    heard_before: bool
    snapshot: bytes  # the newest JPEG the watcher had of it, b"" if none
    snapshot_ts: float  # the camera's capture time of that JPEG

    def text(self, now: float) -> str:
        if not self.heard_before:
            return (f"{self.camera}: no heartbeat since the watch started "
                    f"{now - self.last_seen:.0f} s ago")
        return f"{self.camera}: silent for {now - self.last_seen:.0f} s (no heartbeat)"


@dataclass(frozen=True)
class Back:
    camera: str
    gone_for: float  # seconds between the last heartbeat before and the first after

    def text(self, now: float) -> str:
        return f"{self.camera}: back after {_duration(self.gone_for)} without a heartbeat"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Watch:
    timeout: float
    started: float
    expected: tuple[str, ...] = ()  # cameras that count as silent before they are first heard
    last_seen: dict[str, float] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    snapshots: dict[str, tuple[bytes, float]] = field(default_factory=dict)

    def heard(self, camera: str, now: float) -> Back | None:
        """A heartbeat from ``camera``: a ``Back`` if it had been reported gone."""
        before = self.last_seen.get(camera, self.started)
        self.last_seen[camera] = now
        if camera in self.gone:
            self.gone.discard(camera)
            return Back(camera, now - before)
        return None

    def snapshot(self, camera: str, jpeg: bytes, ts: float) -> None:
        self.snapshots[camera] = (jpeg, ts)

    def check(self, now: float) -> list[Gone]:
        """Cameras that went silent since the last check, each once per outage."""
        out = []
        for camera in sorted(set(self.expected) | set(self.last_seen)):
            if camera in self.gone:
                continue
            seen = self.last_seen.get(camera)
            since = self.started if seen is None else seen
            if now - since >= self.timeout:
                self.gone.add(camera)
                jpeg, ts = self.snapshots.get(camera, (b"", 0.0))
                out.append(Gone(camera, since, seen is not None, jpeg, ts))
        return out

    def next_due(self, now: float) -> float:
        """Seconds until the earliest camera could time out (for a wait)."""
        pending = [self.last_seen.get(c, self.started) + self.timeout - now
                   for c in set(self.expected) | set(self.last_seen) if c not in self.gone]
        return max(0.0, min(pending)) if pending else self.timeout
