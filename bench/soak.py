"""Soak: the whole system for a long while, its memory and descriptors sampled.

``pisentry run`` with every service (synthetic source at 15 fps, a passer-by
every ``--period`` seconds, so an event a minute by default), every
notification channel on, against real loopback peers (sshd as the NAS, the
fake Bot API, SMTP with STARTTLS, mosquitto). Every ``--interval`` seconds it
samples each service's resident memory (RSS and PSS), open descriptors, CPU
time and pid, and the heartbeat counters (capture fps, frames the detector
skipped, malformed messages, errors). At the end: memory growth per service
after the warm-up (median of the last 3 samples against the median of the
first 3 after warm-up), descriptor growth, restarts, and the events, clips,
alerts and NAS copies counted.

    .venv/bin/python bench/soak.py [--minutes 30] [--period 60] [--interval 20]
                                   [--width 1280 --height 720] [--out bench/out/soak.json]

The detector's dropped frames: detect subscribes to raw frames with
``latest_only``, so a frame it was too busy to take is replaced by a newer one
(counted as ``dropped`` in its heartbeat); the figure is reported as a share of
the frames captured.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.runtime_venv import runtime_python
from common.config import parse_config
from tests.support import new_home, running_pipeline
from tests.system.harness import (
    HAVE_DETECT,
    BusWatch,
    Peers,
    StandInDetect,
    cpu_seconds,
    free_port,
    open_fds,
    pss_mb,
    rss_mb,
    system_config,
)


def sample(pipe: Any, services: list[str], watch: BusWatch, t0: float) -> dict[str, Any]:
    row: dict[str, Any] = {"t": round(time.time() - t0, 1), "services": {}}
    for svc in services:
        try:
            pid = pipe.service_pid(svc)
            row["services"][svc] = {"pid": pid, "rss_mb": round(rss_mb(pid), 2),
                                    "pss_mb": round(pss_mb(pid), 2), "fds": open_fds(pid),
                                    "cpu_s": round(cpu_seconds(pid), 2)}
        except Exception as exc:  # noqa: BLE001 - a service mid-restart: note it, go on
            row["services"][svc] = {"error": str(exc)[:100]}
        hb = watch.heartbeat(svc)
        if hb is not None:
            c = hb.counters
            row["services"][svc]["hb"] = {k: c.get(k) for k in (
                "in", "dropped", "malformed", "errors", "fps", "frames", "degraded") if k in c}
    return row


def growth(values: list[float]) -> float:
    """Per cent change from the start to the end of the steady part."""
    if len(values) < 4:
        return 0.0
    k = min(3, len(values) // 2)
    first, last = statistics.median(values[:k]), statistics.median(values[-k:])
    return round(100.0 * (last - first) / first, 2) if first else 0.0


def summarise(samples: list[dict[str, Any]], services: list[str], warmup_s: float
              ) -> dict[str, Any]:
    steady = [s for s in samples if s["t"] >= warmup_s] or samples
    out: dict[str, Any] = {}
    for svc in services:
        rows = [s["services"].get(svc, {}) for s in steady]
        rows = [r for r in rows if "rss_mb" in r]
        if not rows:
            continue
        rss = [r["rss_mb"] for r in rows]
        fds = [r["fds"] for r in rows]
        pids = {r["pid"] for r in [s["services"].get(svc, {}) for s in samples] if "pid" in r}
        span = steady[-1]["t"] - steady[0]["t"] if len(steady) > 1 else 1.0
        cpu = (rows[-1]["cpu_s"] - rows[0]["cpu_s"]) / span * 100 if span > 0 else 0.0
        out[svc] = {"rss_first_mb": rss[0], "rss_last_mb": rss[-1], "rss_max_mb": max(rss),
                    "rss_growth_pct": growth(rss), "pss_last_mb": rows[-1]["pss_mb"],
                    "fds_first": fds[0], "fds_last": fds[-1], "fds_max": max(fds),
                    "restarts": len(pids) - 1, "cpu_pct": round(cpu, 1)}
    totals = [sum(r.get("rss_mb", 0) for r in s["services"].values()) for s in steady]
    pss = [sum(r.get("pss_mb", 0) for r in s["services"].values()) for s in steady]
    out["total"] = {"rss_last_mb": round(totals[-1], 1), "rss_growth_pct": growth(totals),
                    "pss_last_mb": round(pss[-1], 1), "pss_growth_pct": growth(pss)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--period", type=float, default=60.0, help="seconds between passers-by")
    ap.add_argument("--interval", type=float, default=20.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=0.0,
                    help="seconds ignored for growth (default: 3 min or a fifth of the run)")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--out", default="bench/out/soak.json")
    ap.add_argument("--python", default="",
                    help="the services' interpreter (default: a venv with only the "
                         "runtime dependencies, made by bench/runtime_venv.py)")
    args = ap.parse_args()
    python = args.python or runtime_python()
    duration = args.minutes * 60
    warmup = args.warmup or min(180.0, duration / 5)

    peers = Peers().start()
    home = new_home()
    raw = system_config(peers, free_port(), capture={
        "fps": args.fps, "width": args.width, "height": args.height,
        "object_period": args.period, "bitrate": 2_000_000},
        detect={"quiet_seconds": 3.0}, record={"rec_sec_before": 3, "rec_sec_after": 5})
    config = parse_config(raw)
    services = [s for s in raw["general"]["services"]]
    samples: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    try:
        with running_pipeline(raw, home=home, python=python) as pipe:
            watch = BusWatch(config, home).start()
            pipe.wait_healthy(60)
            stand_in = None if HAVE_DETECT else StandInDetect(config, home, args.period).start()
            t0 = time.time()
            next_sample = t0
            while time.time() - t0 < duration:
                if time.time() >= next_sample:
                    samples.append(sample(pipe, services, watch, t0))
                    next_sample += args.interval
                    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                    Path(args.out + ".partial").write_text(json.dumps(samples))
                time.sleep(0.5)
            samples.append(sample(pipe, services, watch, t0))
            if stand_in is not None:
                stand_in.stop()
            time.sleep(8)  # the last clip closes and ships
            events = watch.started_events()
            finished = watch.finished()
            cap = watch.heartbeat("capture")
            det = watch.heartbeat("detect")
            frames = (cap.counters.get("frames") or cap.counters.get("out") or 0) if cap else 0
            dropped = det.counters.get("dropped", 0) if det else 0
            nas = peers.nas_clips()
            result = {
                "events": len(events),
                "clips_finished": len(finished),
                "telegram_photos": len(peers.telegram.of("sendPhoto")),
                "telegram_videos": len(peers.telegram.of("sendVideo")),
                "mails": len(peers.smtp.messages),
                "nas_clips": len(nas),
                "nas_duplicates": sum(1 for v in nas.values() if len(v) > 1),
                "capture_frames": frames,
                "detector_dropped": dropped,
                "detector_dropped_pct": round(100 * dropped / frames, 3) if frames else None,
                "detector_in": det.counters.get("in") if det else None,
                "capture_fps": cap.counters.get("fps") if cap else None,
                "malformed": {s: h.counters.get("malformed", 0)
                              for s, h in watch.heartbeats.items()},
                "errors": {s: h.counters.get("errors", 0) for s, h in watch.heartbeats.items()},
            }
            watch.stop()
    finally:
        peers.stop()
    report = {
        "bench": "soak", "services_python": python, "machine": {"platform": platform.platform(),
                                     "cpu": platform.processor() or platform.machine(),
                                     "python": platform.python_version()},
        "minutes": args.minutes, "fps": args.fps, "size": [args.width, args.height],
        "period_s": args.period, "interval_s": args.interval, "warmup_s": warmup,
        "real_detect": HAVE_DETECT,
        "summary": summarise(samples, services, warmup), "counts": result, "samples": samples,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    Path(args.out + ".partial").unlink(missing_ok=True)
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
