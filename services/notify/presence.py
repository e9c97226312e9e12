"""Who is home: phones seen on the LAN disarm, all gone arms.

A phone counts as home when its address is in the kernel's neighbour table
(``/proc/net/arp``) as a complete entry. For IPv4 addresses we first send one
empty UDP datagram to the discard port, which makes the kernel resolve the
address by ARP: no raw socket, no root, and it wakes no service on the phone.
Phones sleep and drop off Wi-Fi for minutes, hence ``away_after``: everyone is
away only when no phone was seen for that long.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

log = logging.getLogger(__name__)

ARP_TABLE = Path("/proc/net/arp")
ATF_COMPLETE = 0x2


def neighbours(table: Path = ARP_TABLE) -> set[str]:
    """IPv4 and MAC addresses (lower case) with a complete neighbour entry."""
    seen: set[str] = set()
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return seen
    for line in lines:
        cols = line.split()
        if len(cols) < 4:
            continue
        try:
            flags = int(cols[2], 16)
        except ValueError:
            continue
        if flags & ATF_COMPLETE:
            seen.add(cols[0])
            seen.add(cols[3].lower())
    return seen


def probe(address: str) -> None:
    """Nudge the kernel into resolving ``address`` (IPv4 only; MACs cannot be probed)."""
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"", (address, 9))
    except OSError:
        pass


class Presence:
    """Turns sightings into home / away with hysteresis. Pure apart from ``look``."""

    def __init__(self, hosts: list[str], away_after: float, table: Path = ARP_TABLE) -> None:
        self.hosts = [h.lower() for h in hosts]
        self.away_after = away_after
        self.table = table
        self.last_seen: float | None = None
        self.first_look: float | None = None
        self.home: bool | None = None

    def look(self, now: float) -> bool | None:
        """Probe and read the table; returns the new state on a change, else None."""
        for host in self.hosts:
            probe(host)
        return self.update(now, bool(neighbours(self.table) & set(self.hosts)))

    def update(self, now: float, seen: bool) -> bool | None:
        if self.first_look is None:
            self.first_look = now
        if seen:
            self.last_seen = now
            home = True
        else:
            since = self.last_seen if self.last_seen is not None else self.first_look
            if now - since < self.away_after:
                return None  # not seen lately, but not gone long enough to be away
            home = False
        changed = home != self.home
        self.home = home
        return home if changed else None
