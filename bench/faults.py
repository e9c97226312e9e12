"""Faults and outages at full length (the tests run one of each, short).

The whole system under ``pisentry run`` with real loopback peers and the
synthetic camera (a passer-by every ``--period`` seconds):

1. kill -9 of each service in turn, ``--kills`` times each, ``--gap`` seconds
   apart: seconds until the pipeline is whole again after each kill;
2. the NAS (sshd and its sessions) down for ``--nas-outage`` seconds;
3. Telegram answering 500 for ``--telegram-outage`` seconds.

Then, for everything that happened: every clip decodes, is on the NAS exactly
once and byte-identical; every event has its clip and exactly one alert.

``--record-restarts N`` instead: capture, detect and record alone (the
synthetic camera, a passer-by every 12 s), record killed N times; for each,
seconds from the kill -9 to supervisord's new process, to the first h264
packet the new recorder received (``first_h264_s``: capture replays its h264
pre-roll to a new subscriber), to its first heartbeat, and how far before
the kill the video it got reaches (``reach_before_kill_s``: the capture time
of that first packet; > 0 means the seconds it was down are held). Then, for
every event with a kill inside its clip window (rec_sec_before ahead of its
start to its end), the seconds of that window no clip of it covers
(``uncovered_s``, the recovered clip of the killed recorder counted), the
catalogue's ``missed`` and the longest stretch between two decoded frames
of its clips (``largest_hole_s``).

    .venv/bin/python bench/faults.py [--kills 5] [--nas-outage 300]
                                     [--telegram-outage 60] [--out bench/out/faults.json]
    .venv/bin/python bench/faults.py --record-restarts 10 [--out bench/out/record_restart.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.system import conftest
from tests.system.harness import wait_until
from tests.system.test_faults import KILL_ORDER, check_whole, kill_and_time, settle

RECOVERY_TARGET = 5.0  # seconds from a kill -9 until the pipeline is whole again


def _process_start(pid: int) -> float:
    """time.time() when ``pid`` started (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start, after boot
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def _uncovered(window: tuple[float, float], spans: list[tuple[float, float]]) -> float:
    """Seconds of ``window`` outside every span."""
    lo, hi = window
    covered, at = 0.0, lo
    for a, b in sorted(spans):
        a, b = max(a, at), min(b, hi)
        if b > a:
            covered += b - a
            at = b
    return round(max(0.0, hi - lo - covered), 2)


def _coverage(home: Any, kills: list[float], pre: float, fps: float) -> list[dict[str, Any]]:
    """A clip covers from its first frame to one frame after its last (its
    ``end`` is the last frame's capture time)."""
    from tests.system.test_record_restart import _clips_of, _largest_hole, _rows

    out = []
    for ev in _rows(home, "SELECT * FROM events WHERE end > 0 ORDER BY start"):
        window = (ev["start"] - pre, ev["end"])
        inside = [k for k in kills if window[0] <= k <= window[1]]
        if not inside:
            continue
        clips = [c for c in _clips_of(home, ev["id"]) if c["state"] != "open"]
        holes = [_largest_hole(c["path"]) for c in clips if Path(c["path"]).exists()]
        out.append({"event_s": round(ev["end"] - ev["start"], 1),
                    "kills_after_start_s": [round(k - ev["start"], 2) for k in inside],
                    "clips": len(clips),
                    "uncovered_s": _uncovered(window, [(c["start"], c["end"] + 1 / fps)
                                                       for c in clips]),
                    "missed_s": round(sum(c["missed"] or 0 for c in clips), 2),
                    "largest_hole_s": round(max(holes), 2) if holes else -1.0})
    return out


def record_restarts(n: int, gap: float) -> dict[str, Any]:
    from common.config import parse_config
    from tests.support import running_pipeline
    from tests.system.harness import BusWatch
    from tests.system.test_record_restart import RAW

    config = parse_config(RAW)
    rows: list[dict[str, float]] = []
    kills: list[float] = []
    with running_pipeline(RAW) as pipe:
        pipe.wait_healthy(60)
        watch = BusWatch(config, pipe.home).start()
        try:
            wait_until(lambda: watch.finished(), 40, "a first clip")
            for _ in range(n):
                old = pipe.service_pid("record")
                t0 = time.time()
                os.kill(old, signal.SIGKILL)
                kills.append(t0)

                def fresh(old: int = old) -> Any:
                    hb = watch.heartbeat("record")
                    return hb if hb is not None and hb.pid != old else None
                wait_until(lambda: fresh() is not None, 30, "a new record")
                first_hb = time.time()
                wait_until(lambda: fresh().counters.get("first_video", 0) > 0, 30,
                           "its first h264 packet")
                hb = fresh()
                started = _process_start(hb.pid)
                came = hb.counters.get("first_video_at", 0)  # 0: a record before it
                rows.append({"spawned_s": round(started - t0, 2) if started else -1.0,
                             "first_h264_s": round(came - t0, 2) if came else -1.0,
                             "reach_before_kill_s": round(t0 - hb.counters["first_video"], 2),
                             "first_heartbeat_s": round(first_hb - t0, 2)})
                print(rows[-1], flush=True)
                time.sleep(gap)
            # The last events end and their clips finish.
            time.sleep(float(RAW["capture"]["object_period"]))
            wait_until(lambda: not _open_clips(pipe.home), 40, "every clip finished")
        finally:
            watch.stop()
        coverage = _coverage(pipe.home, kills, float(RAW["record"]["rec_sec_before"]),
                             float(RAW["capture"]["fps"]))
        held = watch.heartbeat("capture")
        held = {k: held.counters.get(k) for k in ("preroll_s", "preroll_bytes", "replays")} \
            if held is not None else {}
    first = [r["first_h264_s"] for r in rows]
    reach = [r["reach_before_kill_s"] for r in rows]
    return {"bench": "record_restart", "restarts": rows,
            "first_h264_median_s": statistics.median(first), "first_h264_max_s": max(first),
            "reach_before_kill_min_s": min(reach), "capture_preroll": held,
            "events_with_a_kill": coverage,
            "uncovered_max_s": max((c["uncovered_s"] for c in coverage), default=0.0),
            "load_before": os.getloadavg()}


def _open_clips(home: Any) -> list[Any]:
    from tests.system.test_record_restart import _rows

    return _rows(home, "SELECT id FROM clips WHERE state = 'open'")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--gap", type=float, default=4.0)
    ap.add_argument("--period", type=float, default=8.0)
    ap.add_argument("--nas-outage", type=float, default=300.0)
    ap.add_argument("--telegram-outage", type=float, default=60.0)
    ap.add_argument("--out", default="bench/out/faults.json")
    ap.add_argument("--record-restarts", type=int, default=0,
                    help="only time record's restarts, this many (see above)")
    args = ap.parse_args()
    if args.record_restarts:
        load = os.getloadavg()
        out = record_restarts(args.record_restarts, args.gap)
        out["load_at_start"] = load
        out["load_at_end"] = os.getloadavg()
        del out["load_before"]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(json.dumps(out, indent=2))
        return 0
    factory = conftest.system_factory.__wrapped__()  # the tests' fixture, as a generator
    make = next(factory)
    result: dict[str, Any] = {}
    try:
        system = make(capture={"object_period": args.period},
                      record={"event_timeout_seconds": 10})
        peers = system.peers
        wait_until(lambda: system.watch.finished(), 40, "a first clip")
        times: dict[str, list[float]] = {s: [] for s in KILL_ORDER}
        down: list[tuple[str, float, float]] = []  # service, killed at, whole again at
        for _ in range(args.kills):
            for service in KILL_ORDER:
                t_kill = time.time()
                times[service].append(round(kill_and_time(system, service), 2))
                down.append((service, t_kill, time.time()))
                time.sleep(args.gap)
        print(f"kills done: {times}", flush=True)
        t0 = time.time()
        peers.nas.stop()
        degraded_seen = False
        while time.time() - t0 < args.nas_outage:
            rows = json.loads(system.status()[1])["services"]
            notify = next(r for r in rows if r["service"] == "notify")
            degraded_seen |= "NAS" in notify["counters"].get("degraded", "")
            time.sleep(2)
        peers.nas.start()
        nas_back = time.time()
        print("NAS back", flush=True)
        peers.telegram.outage = True
        time.sleep(args.telegram_outage)
        peers.telegram.outage = False
        time.sleep(args.gap)
        before = time.time()
        events = system.watch.started_events()
        settle(system, before, timeout=max(120.0, args.nas_outage))
        shipped_after = time.time() - nas_back
        try:
            wait_until(lambda: all(peers.telegram.alerts_for(e) >= 1 for e in events), 120,
                       "every alert delivered")
        except AssertionError:
            pass
        starts = {m.event_id: m.ts for m in system.watch.motions if m.phase == "start"}
        unalerted = []
        for e in events:
            if peers.telegram.alerts_for(e) == 0:
                near = [f"{svc} down {starts[e] - k:+.1f} s after its kill"
                        for svc, k, back in down if k - 1 <= starts[e] <= back + 1]
                unalerted.append({"event": e, "while": near or "no kill"})
        try:
            figures = check_whole(system, events, before)
        except AssertionError as exc:
            figures = {"events": len(events), "problems": [
                line for line in str(exc).split("\n")
                if line.startswith("event ") or ".mp4: " in line][:40]}
        flat = [t for ts in times.values() for t in ts]
        result = {
            "bench": "faults", "kills_per_service": args.kills,
            "recovery_s": times, "recovery_max_s": max(flat),
            "recovery_median_s": statistics.median(flat),
            "recovery_target_s": RECOVERY_TARGET,
            "recovery_over_target": {s: [t for t in ts if t > RECOVERY_TARGET]
                                     for s, ts in times.items() if max(ts) > RECOVERY_TARGET},
            "nas_outage_s": args.nas_outage, "nas_outage_shown_in_status": degraded_seen,
            "backlog_shipped_s_after_nas_back": round(shipped_after, 1),
            "telegram_outage_s": args.telegram_outage, **figures,
            "clips": len([c for c in system.clips() if c["start"] < before]),
            "events_without_alert": unalerted,
            "all_intact_and_exactly_once": "problems" not in figures,
        }
    except AssertionError as exc:
        result = {"bench": "faults", "error": str(exc)[:3000]}
    finally:
        try:
            next(factory)
        except StopIteration:
            pass
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
