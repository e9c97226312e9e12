"""Bytes written per service per day, idle and at 100 events a day, clips apart.

The whole system under ``pisentry run`` (synthetic camera, every service,
supervisord writing their logs) in its own home. After a warm-up (start-up
writes such as creating the catalogue are not a daily cost), ``/proc/<pid>/io``
``write_bytes`` of every process of the tree is read at the start and end of
two windows: idle (no passer-by), then with a passer-by every ``--period``
seconds. Idle bytes scale to a day; each event's bytes are what the event
window wrote beyond idle, over its events; so a day of 100 events is idle plus
100 events. Clips are reported apart (record's ``clip_bytes``: the files a
camera exists to write); snapshots, proofs, catalogue rows and logs are not.

    .venv/bin/python bench/write_budget.py [--idle 300] [--events 300] [--period 20]
                                           [--out bench/out/write_budget.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.bus import Bus
from common.config import parse_config
from common.messages import Motion
from common.writebudget import DAY, process_write_bytes
from tests.notify.peers import free_port
from tests.support import Pipeline, new_home, write_config

SERVICES = ("capture", "detect", "record", "notify", "ir", "web")


def tree(pipeline: Pipeline) -> dict[str, int]:
    """Name -> pid of every long-lived process of the instance."""
    assert pipeline.proc is not None
    out = {"supervisord (logs)": pipeline.proc.pid}  # `pisentry run` runs it in-process
    for child in psutil.Process(pipeline.proc.pid).children(recursive=True):
        cmd = " ".join(child.cmdline())
        name = next((s for s in SERVICES if cmd.endswith(f"common.cli {s}") or
                     f"common.cli {s} " in cmd), None)
        if name:
            out[name] = child.pid
        elif "supervisord" in cmd:
            out["supervisord (logs)"] = child.pid
    return out


def written(pids: dict[str, int]) -> dict[str, int]:
    return {name: process_write_bytes(pid) or 0 for name, pid in pids.items()}


def clip_bytes_on_disk(home: Any) -> int:
    return sum(p.stat().st_size for p in home.recordings_dir.rglob("*.mp4"))


def window(pipeline: Pipeline, seconds: float, listen: Any) -> tuple[dict[str, int], int, int]:
    """Bytes each process wrote in ``seconds``, events started, clip bytes
    written (what the clip files grew by: growing clips count as they grow)."""
    pids = tree(pipeline)
    before = written(pids)
    clips_before = clip_bytes_on_disk(pipeline.home)
    events = 0
    end = time.time() + seconds
    while time.time() < end:
        for msg in listen.recv(0.5):
            if isinstance(msg.header, Motion) and msg.header.phase == "start":
                events += 1
    after = written(pids)
    clip_bytes = clip_bytes_on_disk(pipeline.home) - clips_before
    if tree(pipeline) != pids:
        raise RuntimeError(f"a process restarted during the window: {pids} -> {tree(pipeline)}")
    return {k: after[k] - before[k] for k in pids}, events, clip_bytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--idle", type=float, default=300.0)
    ap.add_argument("--events", type=float, default=300.0)
    ap.add_argument("--period", type=float, default=20.0)
    ap.add_argument("--out", default="bench/out/write_budget.json")
    args = ap.parse_args()
    results: dict[str, Any] = {"load_note": "shared 2-core machine, other engineers' tests "
                                            "running", "windows_s": [args.idle, args.events]}
    phases: dict[str, tuple[dict[str, int], int, int]] = {}
    for name, period, seconds in (("idle", 3600.0, args.idle),
                                  ("events", args.period, args.events)):
        home = new_home()
        raw = {"capture": {"object_period": period, "width": 1280, "height": 720, "fps": 15},
               "web": {"port": free_port()}}
        config_path = write_config(home, raw)[0]
        pipeline = Pipeline(home, config_path).start()
        bus = Bus(parse_config(raw), home)
        try:
            pipeline.wait_healthy(90)
            listen = bus.subscriber(["detect"], [Motion.TOPIC])
            # A passer-by walks at start: the idle window begins after it and its clip.
            time.sleep(args.warmup if name == "idle" else 5.0)
            listen.read()
            phases[name] = window(pipeline, seconds, listen)
            print(f"{name}: {phases[name]}", flush=True)
        finally:
            bus.close()
            pipeline.stop()
    idle, _, idle_clips = phases["idle"]
    idle["record"] = max(0, idle.get("record", 0) - idle_clips)
    busy, events, clip_bytes = phases["events"]
    per_day_idle = {k: round(v / args.idle * DAY / 1e6, 2) for k, v in idle.items()}
    per_event = {k: max(0.0, busy.get(k, 0) - idle.get(k, 0) / args.idle * args.events)
                 / max(events, 1) for k in busy}
    # record's own bytes hold the clips: take them out, they are reported apart
    per_event["record"] = max(0.0, per_event.get("record", 0.0) - clip_bytes / max(events, 1))
    per_day_100 = {k: round(per_day_idle.get(k, 0) + 100 * per_event[k] / 1e6, 2)
                   for k in per_event}
    results.update({
        "idle_mb_day": per_day_idle,
        "idle_mb_day_total": round(sum(per_day_idle.values()), 2),
        "idle_clip_bytes": idle_clips,
        "events_in_window": events,
        "per_event_kb": {k: round(v / 1e3, 1) for k, v in per_event.items()},
        "at_100_events_mb_day": per_day_100,
        "at_100_events_mb_day_total": round(sum(per_day_100.values()), 2),
        "clip_mb_per_event": round(clip_bytes / max(events, 1) / 1e6, 2),
        "clips_mb_day_at_100_events": round(100 * clip_bytes / max(events, 1) / 1e6, 1),
        "target_idle_mb_day": 20.0,
    })
    results["idle_within_target"] = results["idle_mb_day_total"] <= 20.0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0 if results["idle_within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
