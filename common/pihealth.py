"""The Pi's own health: power and throttling, temperature, free disk, memory.

Read from the files the kernel exposes (paths in ``[health]``, so a test feeds
real files and a non-Pi host simply has no throttled flags):

    throttled  /sys/devices/platform/soc/soc:firmware/get_throttled, the
               firmware's flags in hex, the value ``vcgencmd get_throttled``
               prints (``throttled=0x50005`` is accepted too)
    thermal    /sys/class/thermal/thermal_zone0/temp, millidegrees C
    meminfo    /proc/meminfo (MemTotal, MemAvailable)
    disk       statvfs of the recordings folder

``read_health`` takes one reading; ``Problems`` turns successive readings into
raise and all-clear transitions, each condition once, so a Pi running hot all
afternoon sends one alert and one all-clear, not one per check. Numeric
conditions clear a margin below their limit, or a reading hovering at the
limit would flap. Pure logic: notify runs it on its tick and sends the
transitions as notices; the health page shows the reading.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.config import HealthConfig

# Bits of the firmware's throttled word (the Raspberry Pi documentation of
# vcgencmd get_throttled). The low bits are the state now; bits 16-19 say the
# same thing happened at some point since boot and stay set until a reboot.
NOW_FLAGS = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled",
             3: "soft temperature limit"}
SINCE_BOOT_SHIFT = 16

TEMPERATURE_MARGIN_C = 5.0  # hot until this far below the limit
RECOVERY_FACTOR = 1.2  # disk and memory clear at 120 % of their limit


@dataclass(frozen=True)
class Reading:
    throttled: int | None  # the raw word; None where the file is absent (not a Pi)
    temperature: float | None  # degrees C
    mem_total: int | None  # bytes
    mem_available: int | None
    disk_path: str
    disk_free: int | None  # bytes
    disk_total: int | None
    disk_read_only: bool | None = None

    @property
    def flags_now(self) -> list[str]:
        return _names(self.throttled, 0)

    @property
    def flags_since_boot(self) -> list[str]:
        return _names(self.throttled, SINCE_BOOT_SHIFT)

    def view(self) -> dict[str, Any]:
        out = asdict(self)
        out["throttled_hex"] = None if self.throttled is None else f"0x{self.throttled:x}"
        out["flags_now"] = self.flags_now
        out["flags_since_boot"] = self.flags_since_boot
        return out


def _names(word: int | None, shift: int) -> list[str]:
    if word is None:
        return []
    return [name for bit, name in NOW_FLAGS.items() if word >> (bit + shift) & 1]


def parse_throttled(text: str) -> int:
    """The flags word from the sysfs file (``50005``) or vcgencmd's output
    (``throttled=0x50005``); ValueError for anything else."""
    value = text.strip()
    value = value.removeprefix("throttled=")
    return int(value, 16)


def _read_text(path: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _meminfo(text: str | None) -> tuple[int | None, int | None]:
    fields: dict[str, int] = {}
    for line in (text or "").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * 1024  # kB
    return fields.get("MemTotal"), fields.get("MemAvailable")


def read_health(cfg: HealthConfig, disk_path: Path) -> Reading:
    """One reading; a missing or garbled file reads as unknown (None), never
    an exception: a health check must not take its host down."""
    raw = _read_text(cfg.throttled_path)
    try:
        throttled = parse_throttled(raw) if raw is not None else None
    except ValueError:
        throttled = None
    temp_raw = _read_text(cfg.thermal_path)
    try:
        temperature = int(temp_raw.strip()) / 1000.0 if temp_raw is not None else None
    except ValueError:
        temperature = None
    total, available = _meminfo(_read_text(cfg.meminfo_path))
    free: int | None = None
    disk_total: int | None = None
    read_only: bool | None = None
    try:
        st = os.statvfs(disk_path)
        free, disk_total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        read_only = bool(st.f_flag & os.ST_RDONLY)
    except OSError:
        pass  # not mounted (a USB disk pulled): unknown
    return Reading(throttled, temperature, total, available, str(disk_path), free, disk_total,
                   read_only)


@dataclass(frozen=True)
class Transition:
    condition: str  # "power", "temperature", "read-only", "disk", "memory"
    raised: bool  # False: the all-clear
    text: str


@dataclass
class Problems:
    """The conditions active now, and the transitions each reading causes."""

    cfg: HealthConfig
    active: dict[str, str] = field(default_factory=dict)  # condition -> its alert text

    def update(self, r: Reading) -> list[Transition]:
        out = []
        for condition, text, clear in self._judge(r):
            was = condition in self.active
            if text and not was:
                self.active[condition] = text
                out.append(Transition(condition, True, text))
            elif was and clear:
                out.append(Transition(condition, False,
                                      f"all clear: {self.active.pop(condition)} is over"))
        return out

    def _judge(self, r: Reading) -> list[tuple[str, str, bool]]:
        """(condition, alert text or "", whether an active alert may clear)."""
        cfg = self.cfg
        out: list[tuple[str, str, bool]] = []
        if r.throttled is not None:
            now = r.flags_now
            text = ", ".join(now) + f" (throttled=0x{r.throttled:x})" if now else ""
            if "under-voltage" in now:
                text = "power supply too weak: " + text
            out.append(("power", text, not now))
        if r.temperature is not None and cfg.temperature_alert_c > 0:
            hot = r.temperature >= cfg.temperature_alert_c
            out.append(("temperature",
                        f"CPU at {r.temperature:.1f} °C (alert at {cfg.temperature_alert_c:g})"
                        if hot else "",
                        r.temperature < cfg.temperature_alert_c - TEMPERATURE_MARGIN_C))
        if r.disk_read_only is not None:
            # A card that turns read-only is a card dying (or a USB disk gone bad).
            out.append(("read-only", f"{r.disk_path} is read-only: no clip can be kept"
                        if r.disk_read_only else "", not r.disk_read_only))
        if r.disk_free is not None and cfg.disk_free_alert_mb > 0:
            limit = cfg.disk_free_alert_mb * 1e6
            out.append(("disk",
                        f"only {r.disk_free / 1e6:.0f} MB free on {r.disk_path}"
                        if r.disk_free < limit else "",
                        r.disk_free >= limit * RECOVERY_FACTOR))
        if r.mem_available is not None and cfg.memory_alert_mb > 0:
            limit = cfg.memory_alert_mb * 1e6
            out.append(("memory",
                        f"only {r.mem_available / 1e6:.0f} MB of memory available"
                        if r.mem_available < limit else "",
                        r.mem_available >= limit * RECOVERY_FACTOR))
        return out
