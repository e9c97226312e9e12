"""What wears the SD card: bytes each process writes, where the recordings
live, and how long a card lasts at that rate.

Cards die of writes (the most reported failure of Pi cameras), so every
service reports ``write_bytes`` in its heartbeat (from ``/proc/self/io``: the
bytes it made the kernel send to storage, less those truncated before they
got there) and record reports ``clip_bytes``, the clips among them. The
health page turns them into MB a day per service and a card-life estimate;
``bench/write_budget.py`` measures the same figures from outside.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DAY = 86400.0
# A card's life in bytes written is its size times the erase cycles its flash
# takes, divided by how much more the card writes internally than it is asked
# to (small scattered writes cost whole erase blocks). Both vary by an order of
# magnitude between cards; these are cautious figures for a cheap TLC card.
ERASE_CYCLES = 500
WRITE_AMPLIFICATION = 4.0


def process_write_bytes(pid: int | str = "self") -> int | None:
    """Bytes ``pid`` has written to storage since it started; None where the
    kernel keeps no I/O accounting (or the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return None
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    try:
        return max(0, int(fields["write_bytes"]) - int(fields.get("cancelled_write_bytes", 0)))
    except (KeyError, ValueError):
        return None


def per_day(written: float, seconds: float) -> float:
    return written / seconds * DAY if seconds > 0 else 0.0


def card_life_years(bytes_per_day: float, card_bytes: int) -> float | None:
    """Years until a card of ``card_bytes`` has taken its rated writes at
    ``bytes_per_day``; None when nothing is written."""
    if bytes_per_day <= 0 or card_bytes <= 0:
        return None
    return card_bytes * ERASE_CYCLES / WRITE_AMPLIFICATION / bytes_per_day / 365.0


@dataclass(frozen=True)
class Disk:
    path: str
    device: str  # "sda1", "mmcblk0p2"; "" when unknown (tmpfs, overlay)
    mount: str
    fstype: str
    usb: bool
    read_only: bool
    size: int


def disk_of(path: Path, mountinfo: str = "/proc/self/mountinfo") -> Disk:
    """The block device and mount under ``path``, and whether it is a USB disk
    (its sysfs device sits under a USB controller) or mounted read-only."""
    try:
        st = os.stat(path)
        vfs = os.statvfs(path)
    except OSError:
        return Disk(str(path), "", "", "", False, False, 0)
    read_only = bool(vfs.f_flag & os.ST_RDONLY)
    size = vfs.f_blocks * vfs.f_frsize
    majmin = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    mount, fstype = "", ""
    try:
        for line in Path(mountinfo).read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == majmin:
                sep = parts.index("-")
                mount, fstype = parts[4], parts[sep + 1]
    except (OSError, ValueError):
        pass
    device, usb = "", False
    sys_dev = Path(f"/sys/dev/block/{majmin}")
    if sys_dev.exists():
        real = sys_dev.resolve()
        device = real.name
        usb = "/usb" in str(real)
    return Disk(str(path), device, mount, fstype, usb, read_only, size)
