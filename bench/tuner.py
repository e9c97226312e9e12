"""What the motion tuner costs and how fast it follows a slider.

Runs ``pisentry run`` (synthetic camera at its defaults, 1280x720 at 15 fps,
capture, detect and web) in a temporary home and measures, with a plain
WebSocket client on ``/ws/overlay`` standing in for the tuner page:

- CPU of detect and of web (user + system time from /proc, percent of one
  core) over windows without and with a tuner open, alternated ``--rounds``
  times: the overlay is sent only while someone tunes, so without a tuner it
  must cost nothing;
- slider to overlay: from ``POST /api/motion/tuning`` to the first overlay
  message that carries the new value (web -> detect -> web -> client), over
  ``--changes`` changes;
- overlay messages a second and bytes a message on the WebSocket.

    .venv/bin/python bench/tuner.py [--seconds 10] [--rounds 3] [--out bench/out/tuner.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import new_home, running_pipeline
from tests.web.test_service import free_port

API_KEY = "bench-tuner-api-key-0123456789abcdef"
H = {"X-API-Key": API_KEY}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def pids(home: Any) -> dict[str, int]:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{home.run_dir}/supervisor.sock")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    return {p["name"]: p["pid"] for p in proxy.supervisor.getAllProcessInfo()}


async def window(procs: dict[str, int], seconds: float, url: str | None
                 ) -> dict[str, Any]:
    """CPU of each process over ``seconds``, with a tuner on ``url`` if given."""
    import websockets

    start = {name: cpu_seconds(pid) for name, pid in procs.items()}
    t0 = time.monotonic()
    messages, size = 0, 0
    if url is None:
        await asyncio.sleep(seconds)
    else:
        async with websockets.connect(url, additional_headers=H) as ws:
            while time.monotonic() - t0 < seconds:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                messages += 1
                size += len(raw)
                await ws.send("ack")
    wall = time.monotonic() - t0
    out: dict[str, Any] = {name: round(100 * (cpu_seconds(pid) - start[name]) / wall, 2)
                           for name, pid in procs.items()}
    if url is not None:
        out["overlays_per_s"] = round(messages / wall, 2)
        out["bytes_per_overlay"] = round(size / max(1, messages))
    return out


async def follow_slider(base: str, url: str, changes: int) -> list[float]:
    """Seconds from each POST to the first overlay carrying its value."""
    import websockets

    took = []
    async with httpx.AsyncClient(base_url=base, headers=H, timeout=5) as http, \
            websockets.connect(url, additional_headers=H) as ws:
        await ws.recv()
        await ws.send("ack")
        for i in range(changes):
            threshold = 60 if i % 2 == 0 else 25
            t0 = time.monotonic()
            r = await http.post("/api/motion/tuning", json={
                "min_pixel_delta_trigger": threshold, "min_trigger_area": 0.002,
                "frames_to_start": 2})
            r.raise_for_status()
            while True:
                item = json.loads(await ws.recv())
                await ws.send("ack")
                if item["tuning"]["min_pixel_delta_trigger"] == threshold:
                    took.append(time.monotonic() - t0)
                    break
            await asyncio.sleep(0.2)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "tuner.json"))
    args = parser.parse_args()

    home = new_home()
    port = free_port()
    raw = {"general": {"services": ["capture", "detect", "web"]},
           "web": {"port": port, "api_key": API_KEY}}
    with running_pipeline(raw, home=home) as pipe:
        pipe.wait_healthy(60)
        base, url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws/overlay"
        procs = {name: pid for name, pid in pids(home).items() if name in ("detect", "web")}
        time.sleep(3)  # past start-up
        rounds = []
        for _ in range(args.rounds):
            idle = asyncio.run(window(procs, args.seconds, None))
            time.sleep(1)
            tuning = asyncio.run(window(procs, args.seconds, url))
            time.sleep(6)  # the overlay request runs out
            rounds.append({"no_tuner": idle, "tuner_open": tuning})
        took = asyncio.run(follow_slider(base, url, args.changes))
        log = pipe.log.read_text()
    result = {
        "config": "synthetic 1280x720 at 15 fps, lores 320x240, working 160x120",
        "seconds_per_window": args.seconds, "rounds": rounds,
        "slider_to_overlay_s": {"n": len(took), "median": round(statistics.median(took), 4),
                                "max": round(max(took), 4),
                                "p90": round(sorted(took)[int(0.9 * (len(took) - 1))], 4)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if re.search(r"Traceback", log):
        print("a service logged a traceback:\n" + log[-2000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
