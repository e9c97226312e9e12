"""Footprint: resident memory and CPU of every service at steady state.

``pisentry run`` with every service and every channel on (real loopback peers,
as in the soak), the synthetic camera at ``--width`` x ``--height`` h264 (1080p
by default: software x264 here, the Pi's hardware encoder there) with
``--lores`` detection frames (640x480 by default), 15 fps. After ``--warmup``
seconds it samples for ``--seconds``: RSS and PSS per service (PSS splits
shared library pages between the processes that map them, so its sum is what
the services cost together), CPU per service in per cent of one core and in
milliseconds per captured frame, and which heavy native libraries each process
has mapped (numpy, cv2, av). Target: all services under 300 MB together.

    .venv/bin/python bench/footprint.py [--width 1920 --height 1080] [--lores 640x480]
                                        [--seconds 30] [--out bench/out/footprint.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.runtime_venv import runtime_python
from common.config import parse_config
from tests.support import running_pipeline
from tests.system.harness import (
    BusWatch,
    Peers,
    cpu_seconds,
    free_port,
    mapped_libraries,
    open_fds,
    pss_mb,
    rss_mb,
    system_config,
)

TARGET_MB = 300


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--lores", default="640x480")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", default="bench/out/footprint.json")
    ap.add_argument("--python", default="",
                    help="the services' interpreter (default: a venv with only the "
                         "runtime dependencies, made by bench/runtime_venv.py)")
    args = ap.parse_args()
    python = args.python or runtime_python()
    lw, lh = (int(v) for v in args.lores.split("x"))

    peers = Peers().start()
    raw = system_config(peers, free_port(), capture={
        "width": args.width, "height": args.height, "lores_width": lw, "lores_height": lh,
        "fps": args.fps, "object_period": 20, "bitrate": 4_000_000})
    config = parse_config(raw)
    services = raw["general"]["services"]
    rows: dict[str, Any] = {}
    try:
        with running_pipeline(raw, python=python) as pipe:
            watch = BusWatch(config, pipe.home).start()
            pipe.wait_healthy(60)
            time.sleep(args.warmup)
            pids = {s: pipe.service_pid(s) for s in services}
            frames0 = watch.heartbeat("capture").counters.get("frames", 0)
            cpu0 = {s: cpu_seconds(p) for s, p in pids.items()}
            t0 = time.monotonic()
            rss: dict[str, list[float]] = {s: [] for s in services}
            pss: dict[str, list[float]] = {s: [] for s in services}
            while time.monotonic() - t0 < args.seconds:
                for s, p in pids.items():
                    rss[s].append(rss_mb(p))
                    pss[s].append(pss_mb(p))
                time.sleep(1.0)
            elapsed = time.monotonic() - t0
            frames = watch.heartbeat("capture").counters.get("frames", 0) - frames0
            for s, p in pids.items():
                cpu = cpu_seconds(p) - cpu0[s]
                rows[s] = {"pid": p, "rss_mb": round(max(rss[s]), 1),
                           "pss_mb": round(max(pss[s]), 1), "fds": open_fds(p),
                           "cpu_pct": round(100 * cpu / elapsed, 1),
                           "cpu_ms_per_frame": round(1000 * cpu / frames, 2) if frames else None,
                           "native": sorted(mapped_libraries(p))}
            fps = frames / elapsed
            watch.stop()
    finally:
        peers.stop()
    total_rss = round(sum(r["rss_mb"] for r in rows.values()), 1)
    total_pss = round(sum(r["pss_mb"] for r in rows.values()), 1)
    report = {
        "bench": "footprint", "services_python": python,
        "machine": {"platform": platform.platform(), "cpu": platform.processor()
                    or platform.machine(), "python": platform.python_version()},
        "video": f"{args.width}x{args.height}", "lores": args.lores, "fps": args.fps,
        "measured_fps": round(fps, 2), "seconds": args.seconds, "services": rows,
        "total_rss_mb": total_rss, "total_pss_mb": total_pss, "target_mb": TARGET_MB,
        "under_target_pss": total_pss < TARGET_MB,
        "total_cpu_pct": round(sum(r["cpu_pct"] for r in rows.values()), 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
