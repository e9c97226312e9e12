"""Resident memory and CPU of `pisentry ir` with the built-in simulated device.

Starts the real process (serial_port = "sim", so the simulator thread and its
pty are included in the figure), waits until brightness flows, then samples
/proc for ``--seconds``. Prints one JSON object; ``--out FILE`` also writes it.

    .venv/bin/python bench/ir_memory.py [--seconds 10] [--rate 2] [--out bench/out/ir_memory.json]

Measured here (x86-64, Python 3.11, 2 cores): 40 MiB RSS (23 MiB anonymous),
4 threads, 0.25% CPU at 2 reports/s and 1.1% at 20/s; no numpy/cv2 mapped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.bus import Bus
from common.config import parse_config
from common.messages import Brightness
from common.paths import Home


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            out[key] = int(value.split()[0])
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=2.0, help="ir.updates_per_sec")
    ap.add_argument("--out", default="bench/out/ir_memory.json")
    args = ap.parse_args()
    home = Home(Path(tempfile.mkdtemp(prefix="ps-bench-"))).ensure()
    raw = {"ir": {"serial_port": "sim", "updates_per_sec": args.rate}}
    cfg_path = home.root / "ir.toml"
    cfg_path.write_text(f'[ir]\nserial_port = "sim"\nupdates_per_sec = {args.rate}\n')
    config = parse_config(raw)
    bus = Bus(config, home, context=zmq.Context())
    sub = bus.subscriber(["ir"], [Brightness.TOPIC])
    env = {**os.environ, "PISENTRY_HOME": str(home.root)}
    proc = subprocess.Popen([sys.executable, "-m", "common.cli", "ir", "--config", str(cfg_path)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        while not sub.recv(0.1):
            if time.monotonic() - started > 20:
                raise SystemExit("no brightness from pisentry ir within 20 s")
        ready_s = time.monotonic() - started
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        received = 0
        while time.monotonic() - t0 < args.seconds:
            received += len(sub.recv(0.1))
        cpu = _cpu_seconds(proc.pid) - cpu0
        elapsed = time.monotonic() - t0
        status = _status(proc.pid)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        proc.terminate()
        proc.wait(10)
        bus.close()
        shutil.rmtree(home.root, ignore_errors=True)
    result = {
        "benchmark": "ir_memory",
        "updates_per_sec": args.rate,
        "seconds": round(elapsed, 1),
        "ready_seconds": round(ready_s, 2),
        "rss_mib": round(status["VmRSS"] / 1024, 1),
        "peak_rss_mib": round(status["VmHWM"] / 1024, 1),
        "anon_rss_mib": round(status.get("RssAnon", 0) / 1024, 1),
        "threads": status.get("Threads", 0),
        "cpu_percent": round(100 * cpu / elapsed, 2),
        "brightness_msgs_per_sec": round(received / elapsed, 2),
        "numpy_or_cv2_mapped": any(n in maps for n in ("numpy", "cv2", "libopencv")),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
