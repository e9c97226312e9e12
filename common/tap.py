"""``pisentry tap`` and ``pisentry status``: look at the bus from outside."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from common.bus import ENDPOINT_NAMES, STATUS_ENDPOINTS, Bus
from common.messages import Header, Heartbeat
from common.paths import Home
from common.supervisor_client import FATAL, supervised_states

if TYPE_CHECKING:
    from common.config import Config

ALIVE_SECONDS = 3.0


def _header_dict(header: Header) -> dict[str, Any]:
    return {f.name: getattr(header, f.name) for f in dataclasses.fields(header)}


def tap(config: Config, home: Home, topic: str, as_json: bool, seconds: float) -> int:
    bus = Bus(config, home)
    sub = bus.subscriber(ENDPOINT_NAMES, [topic.encode()], hwm=1000)
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    try:
        while time.monotonic() < deadline:
            for msg in sub.recv(min(0.2, max(0.0, deadline - time.monotonic()))):
                sizes = [len(p) for p in msg.payload]
                if as_json:
                    line = json.dumps({"topic": msg.topic.decode(),
                                       "header": _header_dict(msg.header), "sizes": sizes})
                else:
                    fields = " ".join(f"{k}={v}" for k, v in _header_dict(msg.header).items()
                                      if k not in ("camera", "seq", "ts"))
                    line = (f"{msg.topic.decode():14} {msg.header.camera} #{msg.header.seq} "
                            f"{time.strftime('%H:%M:%S', time.localtime(msg.header.ts))} "
                            f"{fields} {sizes if sizes else ''}")
                print(line, flush=True)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        bus.close()
    return 0


def profile_view(hb: Heartbeat) -> dict[str, Any] | None:
    """Detect's detection profile as ``status`` and the web show it, with its
    words: "night profile since 20:31 (IR on)"; None for other services."""
    if not hb.profile:
        return None
    when = time.strftime("%H:%M", time.localtime(hb.profile_since))
    why = f" ({hb.profile_why})" if hb.profile_why else ""
    return {"name": hb.profile, "since": hb.profile_since, "why": hb.profile_why,
            "text": f"{hb.profile} profile since {when}{why}"}


def collect_heartbeats(config: Config, home: Home, expected: list[str],
                       wait: float = 2.5) -> dict[str, Heartbeat]:
    bus = Bus(config, home)
    sub = bus.subscriber(STATUS_ENDPOINTS, [Heartbeat.TOPIC], hwm=1000)
    seen: dict[str, Heartbeat] = {}
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline and not set(expected) <= set(seen):
            for msg in sub.recv(0.1):
                seen[msg.header.service] = msg.header
    finally:
        bus.close()
    return seen


def status(config: Config, home: Home, as_json: bool) -> int:
    from common.supervise import services_to_run

    expected = services_to_run(config)
    supervised = supervised_states(home)
    seen = collect_heartbeats(config, home, [s for s in expected
                                             if supervised.get(s, ("", ""))[0] != FATAL])
    now = time.time()
    healthy = True
    rows: list[dict[str, Any]] = []
    for service in expected:
        hb = seen.get(service)
        state, reason = supervised.get(service, ("", ""))
        alive = (hb is not None and now - hb.ts < ALIVE_SECONDS and hb.status != "stopping"
                 and state != FATAL)
        healthy &= alive
        rows.append({"service": service, "alive": alive,
                     "status": FATAL if state == FATAL else hb.status if hb else "no heartbeat",
                     "supervisord": state or None, "reason": reason,
                     "age": round(now - hb.ts, 2) if hb else None,
                     "pid": hb.pid if hb else None,
                     "counters": hb.counters if hb else {},
                     **({"profile": profile_view(hb)} if hb and hb.profile else {})})
    if as_json:
        print(json.dumps({"healthy": healthy, "services": rows}))
    else:
        for row in rows:
            if row["status"] == FATAL:
                print(f"{row['service']:8} {FATAL:12} {row['reason']}")
                continue
            c = row["counters"]
            extra = f" {c.get('degraded')}" if c.get("degraded") else ""
            err = f" last_error={c['last_error']!r}" if c.get("last_error") else ""
            if row.get("profile"):
                extra += f" {row['profile']['text']}"
            print(f"{row['service']:8} {row['status']:12} pid={row['pid']} "
                  f"in={c.get('in', '-')} out={c.get('out', '-')} "
                  f"dropped={c.get('dropped', '-')} errors={c.get('errors', '-')}{extra}{err}")
        if not supervised:
            print(f"supervisord: not answering on {home.run_dir} (is `pisentry run` running?)",
                  file=sys.stderr)
        print("healthy" if healthy else "NOT healthy", file=sys.stderr)
    return 0 if healthy else 1
