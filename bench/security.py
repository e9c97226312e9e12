"""What the web service's hardening costs and holds, against the real
``pisentry web`` process in a temporary home:

- memory: web's resident size at idle, then after a 300 MB body to
  ``POST /login`` (declared with Content-Length, and chunked) and a 200 MB
  header on an unauthenticated GET; resident now and peak (VmHWM) from /proc.
  Target: within 20 MB of idle.
- logins: 200 concurrent wrong logins from one client; how many got a
  password check (401) and how many were cut (429). Target: at most the
  per-client limit (10) checked.
- latency: ``/api/status`` p50/p99 while 50 MJPEG viewers watch and 1,000
  ``/api/snapshot.jpg`` requests (20 at a time) run, each load in a child
  process so it does not count against the web process. Target: p99 under
  150 ms. Repeated ``--rounds`` times.

    .venv/bin/python bench/security.py [--rounds 3] [--out bench/out/security.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import tomli_w

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.stream import API_KEY, FPS, Pump, _viewers_main, free_port
from common.bus import Bus
from common.config import parse_config
from common.paths import Home
from services.web import auth

MB = 1024 * 1024
H = {"X-API-Key": API_KEY}


def memory(pid: int) -> tuple[float, float]:
    """(resident, peak resident) of ``pid`` in MB."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def send_raw(port: int, head: bytes, body_mb: int, chunked: bool = False) -> str:
    """Send ``head`` and up to ``body_mb`` MB; the status line of the reply."""
    block = b"x" * MB
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(head)
            for _ in range(body_mb):
                s.sendall(f"{MB:x}\r\n".encode() + block + b"\r\n" if chunked else block)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before reading it all
        s.settimeout(10)
        try:
            return s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
        except (ConnectionResetError, TimeoutError):
            return "(reset)"


def memory_scenario(pid: int, port: int) -> dict[str, Any]:
    idle, idle_peak = memory(pid)
    out: dict[str, Any] = {"idle_rss_mb": round(idle, 1), "idle_peak_mb": round(idle_peak, 1),
                           "attacks": []}
    login = "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    attacks = [
        ("300 MB body, Content-Length", (login + f"Content-Length: {300 * MB}\r\n\r\n").encode(),
         300, False),
        ("300 MB body, chunked", (login + "Transfer-Encoding: chunked\r\n\r\n").encode(), 300,
         True),
        ("200 MB header", b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ", 200,
         False),
    ]
    for name, head, size, chunked in attacks:
        t0 = time.monotonic()
        reply = send_raw(port, head, size, chunked)
        time.sleep(0.5)
        rss, peak = memory(pid)
        out["attacks"].append({"attack": name, "reply": reply,
                               "seconds": round(time.monotonic() - t0, 2),
                               "rss_after_mb": round(rss, 1), "peak_mb": round(peak, 1)})
    worst = max(a["peak_mb"] for a in out["attacks"])
    out["peak_over_idle_mb"] = round(worst - idle, 1)
    out["target_met"] = worst - idle <= 20
    return out


async def _logins(base: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as c:
        rs = await asyncio.gather(*[c.post("/login", json={"password": f"wrong {i}"})
                                    for i in range(n)])
    return [r.status_code for r in rs]


def login_scenario(base: str) -> dict[str, Any]:
    t0 = time.monotonic()
    codes = asyncio.run(_logins(base, 200))
    checked = codes.count(401)
    return {"concurrent_wrong_logins": 200, "password_checks_401": checked,
            "cut_429": codes.count(429), "other": len(codes) - checked - codes.count(429),
            "seconds": round(time.monotonic() - t0, 2), "limit": 10, "target_met": checked <= 10}


def _snapshots_main(port: int, total: int, concurrency: int, queue: Any) -> None:
    async def main() -> dict[str, int]:
        done = {"ok": 0, "failed": 0}
        left = iter(range(total))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=H,
                                     timeout=30) as c:
            async def worker() -> None:
                for _ in left:
                    r = await c.get("/api/snapshot.jpg")
                    done["ok" if r.status_code == 200 else "failed"] += 1
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done
    queue.put(asyncio.run(main()))


def latency_scenario(base: str, port: int) -> dict[str, Any]:
    viewers_q: Any = mp.Queue()
    snaps_q: Any = mp.Queue()
    viewers = mp.Process(target=_viewers_main, args=(port, 50, 60, "mjpeg", viewers_q))
    viewers.start()
    time.sleep(3)  # the viewers are connected and frames flow
    snaps = mp.Process(target=_snapshots_main, args=(port, 1000, 20, snaps_q))
    t0 = time.monotonic()
    snaps.start()
    took: list[float] = []
    watching: list[int] = []
    with httpx.Client(base_url=base, headers=H, timeout=10) as c:
        while snaps.is_alive() or not took:
            s = time.perf_counter()
            r = c.get("/api/status")
            took.append((time.perf_counter() - s) * 1000)
            assert r.status_code == 200
            watching.append(r.json()["web"]["viewers"])
            time.sleep(0.05)
    snap_result = snaps_q.get(timeout=10)
    snaps.join()
    load_seconds = time.monotonic() - t0
    viewers.terminate()
    viewers.join()
    took.sort()
    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
    return {"mjpeg_viewers": 50, "viewers_seen_min": min(watching),
            "snapshot_requests": 1000, "snapshots": snap_result,
            "load_seconds": round(load_seconds, 1), "status_requests": len(took),
            "status_p50_ms": round(statistics.median(took), 1), "status_p99_ms": round(p99, 1),
            "status_max_ms": round(took[-1], 1), "target_met": p99 < 150}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="repeats of the latency load")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "security.json"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ps-bench-"))
    home = Home(root).ensure()
    auth.set_password(home, "bench password, never guessed")
    port = free_port()
    raw = {"general": {"services": ["web"]},
           "web": {"port": port, "api_key": API_KEY, "max_stream_fps": FPS}}
    (root / "config.toml").write_text(tomli_w.dumps(raw))
    bus = Bus(parse_config(raw), home)
    pump = Pump(bus)
    pump.start()
    env = {**os.environ, "PISENTRY_HOME": str(root)}
    web = subprocess.Popen([sys.executable, "-m", "common.cli", "web", "--config",
                            str(root / "config.toml")], env=env, cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/api/status", headers=H, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(2)  # settled
        result = {"memory": memory_scenario(web.pid, port), "logins": login_scenario(base),
                  "latency": [latency_scenario(base, port) for _ in range(args.rounds)]}
    finally:
        web.terminate()
        web.wait(10)
        pump.stop.set()
        pump.join(2)
        bus.close()
        shutil.rmtree(root, ignore_errors=True)
    out = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                       "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]}, **result}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
