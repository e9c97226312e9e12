"""What the health page and the status API show: each camera's services from
their heartbeats, and this host's CPU, memory, disk and temperature.

Pure logic: the service feeds heartbeats in; nothing here touches a socket.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from common.messages import Heartbeat
from common.pihealth import read_health
from common.supervisor_client import FATAL
from common.tap import profile_view
from common.writebudget import DAY, card_life_years, disk_of

if TYPE_CHECKING:
    from common.config import HealthConfig

# A service whose last heartbeat is older than this is shown as down; the same
# threshold `pisentry status` uses.
ALIVE_SECONDS = 3.0


@dataclass
class ServiceHealth:
    camera: str
    service: str
    pid: int
    status: str
    started: float
    last_seen: float
    counters: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0  # pid changes seen by this web process
    # detect's detection profile: name, since when, why ("" for other services)
    profile: dict[str, Any] | None = None

    def view(self, now: float) -> dict[str, Any]:
        out = asdict(self)
        out["age"] = round(now - self.last_seen, 3)
        out["alive"] = out["age"] < ALIVE_SECONDS and self.status != "stopping"
        return out


class HealthBoard:
    """The newest heartbeat of every (camera, service)."""

    def __init__(self, expected: dict[str, list[str]]) -> None:
        """``expected``: camera -> services that should be reporting."""
        self.expected = expected
        self.services: dict[tuple[str, str], ServiceHealth] = {}
        # (camera, service) -> the reason supervisord gave up on it (FATAL)
        self.fatal: dict[tuple[str, str], str] = {}

    def supervised(self, camera: str, states: dict[str, tuple[str, str]]) -> None:
        """What this host's supervisord says of ``camera``'s services
        (``common.supervisor_client.supervised_states``)."""
        self.fatal = {k: v for k, v in self.fatal.items() if k[0] != camera}
        self.fatal.update({(camera, name): reason for name, (state, reason) in states.items()
                           if state == FATAL})

    def heartbeat(self, hb: Heartbeat, now: float) -> None:
        key = (hb.camera, hb.service)
        old = self.services.get(key)
        restarts = old.restarts + (old.pid != hb.pid) if old else 0
        profile = profile_view(hb)
        self.services[key] = ServiceHealth(hb.camera, hb.service, hb.pid, hb.status,
                                           hb.started, now, dict(hb.counters), restarts,
                                           profile)

    def view(self, now: float) -> dict[str, list[dict[str, Any]]]:
        """camera -> one row per service (expected ones first, missing ones as down)."""
        out: dict[str, list[dict[str, Any]]] = {}
        cameras = list(self.expected) + sorted({c for c, _ in self.services} - set(self.expected))
        for camera in cameras:
            names = list(self.expected.get(camera, []))
            names += sorted({s for c, s in self.services if c == camera} - set(names))
            rows = []
            for name in names:
                known = self.services.get((camera, name))
                if (camera, name) in self.fatal:
                    rows.append({"camera": camera, "service": name, "alive": False,
                                 "status": FATAL, "reason": self.fatal[camera, name],
                                 "age": None, "counters": {}})
                elif known is None:
                    rows.append({"camera": camera, "service": name, "alive": False,
                                 "status": "no heartbeat", "age": None, "counters": {}})
                else:
                    rows.append(known.view(now))
            out[camera] = rows
        return out

    def profile(self, camera: str) -> dict[str, Any] | None:
        """The detection profile ``camera``'s detect last reported, if any."""
        known = self.services.get((camera, "detect"))
        return known.profile if known is not None else None

    def all_alive(self, now: float) -> bool:
        return all(row["alive"] for rows in self.view(now).values() for row in rows)


def cpu_temperature() -> float | None:
    """Degrees C of the SoC (Pi: thermal_zone0), None where there is no sensor."""
    try:
        temps = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        temps = {}
    for name in ("cpu_thermal", "coretemp", "k10temp", "soc_thermal"):
        if temps.get(name):
            return float(temps[name][0].current)
    zone = Path("/sys/class/thermal/thermal_zone0/temp")
    try:
        return int(zone.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def system_stats(storage: Path, health: HealthConfig) -> dict[str, Any]:
    """This host's load: CPU %, memory, the recordings disk, temperature, and
    the Pi's power and throttling flags (``pi``, see ``common.pihealth``)."""
    try:
        disk = shutil.disk_usage(storage)
        disk_view: dict[str, Any] = {"path": str(storage), "total": disk.total,
                                     "used": disk.used, "free": disk.free,
                                     "percent": round(100 * disk.used / disk.total, 1)}
    except OSError as exc:
        disk_view = {"path": str(storage), "error": str(exc)}
    mem = psutil.virtual_memory()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": os.cpu_count(),
        "load": list(os.getloadavg()),
        "memory": {"total": mem.total, "available": mem.available, "percent": mem.percent},
        "disk": disk_view,
        "temperature": cpu_temperature(),
        "boot_time": round(psutil.boot_time(), 1),
        "pi": read_health(health, storage).view(),
    }


def write_budget(board: HealthBoard, camera: str, storage: Path, home: Path
                 ) -> dict[str, Any]:
    """MB a day each of ``camera``'s services writes (clips apart), where the
    clips go, and the card's expected life at this rate. The rate is each
    process's writes since it started over its uptime, so it settles as the
    services run (a fresh start includes the catalogue's creation)."""
    services: dict[str, float] = {}
    clips_per_day = 0.0
    for (cam, name), sh in board.services.items():
        written = sh.counters.get("write_bytes")
        uptime = sh.last_seen - sh.started
        if cam != camera or not isinstance(written, int) or uptime <= 0:
            continue
        clip_bytes = sh.counters.get("clip_bytes", 0)
        clip_bytes = clip_bytes if isinstance(clip_bytes, int) else 0
        services[name] = max(0, written - clip_bytes) / uptime * DAY / 1e6
        clips_per_day += clip_bytes / uptime * DAY / 1e6
    storage_disk, card = disk_of(storage), disk_of(home)
    clips_on_card = not storage_disk.usb and storage_disk.device == card.device
    card_mb_day = sum(services.values()) + (clips_per_day if clips_on_card else 0.0)
    return {
        "services_mb_day": {k: round(v, 2) for k, v in sorted(services.items())},
        "total_mb_day": round(sum(services.values()), 2),
        "clips_mb_day": round(clips_per_day, 1),
        "clips_on_card": clips_on_card,
        "card_mb_day": round(card_mb_day, 1),
        "card_size": card.size,
        "card_life_years": (None if (y := card_life_years(card_mb_day * 1e6, card.size)) is None
                            else round(y, 1)),
        "storage": asdict(storage_disk),
    }
