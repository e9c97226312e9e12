"""Live-view cost of the web service: CPU with 0, 1, 5 and 20 MJPEG viewers of
640x480 at 10 fps, JPEG encodings per second, and the time to a new viewer's
first frame.

Runs the real ``pisentry web`` process in a temporary home; this process
publishes 640x480 bgr24 ``frame/live/`` frames at 10 fps on a real bus (what
capture does), and the viewers are plain HTTP clients in a child process, so
neither counts against the web process's CPU. CPU is the web process's user +
system time over each window, as a percentage of one core.

    .venv/bin/python bench/stream.py [--seconds 8] [--out bench/out/stream.json]

Also: the same with 1 and 20 h264 (MSE, /ws/h264) viewers, and the bytes per
second each viewer receives in both modes.

Targets (issue 6): 20 viewers at no more than 1.5x the CPU of one; no
encoding with no viewers; first frame to a new viewer under 300 ms.
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
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import tomli_w

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.bus import Bus
from common.config import parse_config
from common.messages import LiveFrame, VideoPacket
from common.paths import Home
from services.capture.encoder import H264Encoder

API_KEY = "bench-api-key-0123456789abcdef0123"
FPS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scene_frames(n: int = 30) -> list[np.ndarray]:
    """An outdoor-like picture (gradient sky, textured ground, a moving block,
    sensor noise), so JPEG sizes are realistic (~40-70 KB)."""
    rng = np.random.default_rng(1)
    h, w = 480, 640
    base = np.zeros((h, w, 3), np.float32)
    base[: h // 2] = np.linspace(200, 120, h // 2)[:, None, None] * np.array([1.0, 0.9, 0.7])
    ground = rng.normal(90, 25, (h // 2, w, 1)).astype(np.float32)
    base[h // 2:] = ground * np.array([0.6, 1.0, 0.7])
    frames = []
    for i in range(n):
        img = base + rng.normal(0, 6, base.shape).astype(np.float32)
        x = 40 + i * 18
        img[260:400, x:x + 50] = (40, 40, 160)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


class Pump(threading.Thread):
    """What capture publishes: live frames and the same picture as h264."""

    def __init__(self, bus: Bus) -> None:
        super().__init__(daemon=True)
        self.pub = bus.publisher("frames")
        self.video = bus.publisher("video")
        self.encoder = H264Encoder(640, 480, FPS, keyframe_interval=1.0)
        self.frames = scene_frames()
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            img = self.frames[i % len(self.frames)].copy()  # a buffer nobody reuses
            self.pub.publish(LiveFrame, [img], ts=time.time(), width=640, height=480,
                             format="bgr24")
            pts = int(i * 1_000_000 / FPS)
            for au, key in self.encoder.encode(img, pts):
                self.video.publish(VideoPacket, [au], ts=time.time(), pts=pts, keyframe=key,
                                   width=640, height=480, fps=FPS)
            i += 1
            next_at += 1.0 / FPS
            time.sleep(max(0.0, next_at - time.monotonic()))


# -- viewers (child process) ---------------------------------------------------------
async def _h264_viewer(port: int, counts: list[int], sizes: list[int], idx: int,
                       stop: float) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/ws/h264", max_size=2**22,
                       additional_headers={"X-API-Key": API_KEY}) as ws:
        while time.monotonic() < stop:
            try:
                msg = await asyncio.wait_for(ws.recv(), stop - time.monotonic())
            except TimeoutError:
                break
            if isinstance(msg, bytes) and msg[4:8] == b"moof":
                counts[idx] += 1
                sizes[idx] += len(msg)


async def _viewer(port: int, counts: list[int], sizes: list[int], idx: int,
                  stop: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /stream.mjpg?fps={FPS} HTTP/1.1\r\nHost: x\r\n"
                 f"X-API-Key: {API_KEY}\r\n\r\n".encode())
    await writer.drain()
    buf = b""
    while time.monotonic() < stop:
        try:
            chunk = await asyncio.wait_for(reader.read(262144), stop - time.monotonic())
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
        sizes[idx] += len(chunk)
        counts[idx] += buf.count(b"--frame\r\n")
        buf = buf[-16:]  # enough to catch a boundary split across reads
    writer.close()


def _viewers_main(port: int, n: int, seconds: float, kind: str, queue: Any) -> None:
    async def main() -> tuple[list[int], list[int]]:
        counts, sizes = [0] * n, [0] * n
        stop = time.monotonic() + seconds
        view = _h264_viewer if kind == "h264" else _viewer
        await asyncio.gather(*(view(port, counts, sizes, i, stop) for i in range(n)))
        return counts, sizes
    queue.put(asyncio.run(main()))


# -- measurements --------------------------------------------------------------------------
def status(base: str) -> dict[str, Any]:
    return httpx.get(f"{base}/api/status", headers={"X-API-Key": API_KEY}, timeout=5).json()


def measure(proc: psutil.Process, base: str, port: int, viewers: int, seconds: float,
            kind: str = "mjpeg") -> dict[str, Any]:
    queue: Any = mp.Queue()
    child = None
    warmup = 2.0
    if viewers:
        child = mp.Process(target=_viewers_main, args=(port, viewers, seconds + warmup + 1,
                                                       kind, queue))
        child.start()
    time.sleep(warmup)
    enc0 = status(base)["web"]["encoded"]
    cpu0 = proc.cpu_times()
    t0 = time.monotonic()
    time.sleep(seconds)
    cpu1 = proc.cpu_times()
    elapsed = time.monotonic() - t0
    enc1 = status(base)["web"]["encoded"]
    counts: list[int] = []
    sizes: list[int] = []
    if child is not None:
        counts, sizes = queue.get(timeout=seconds + 10)
        child.join()
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    # per-viewer fps over the whole connection (warm-up included, so a little low)
    fps = [c / (seconds + warmup + 1) for c in counts]
    total = seconds + warmup + 1
    return {"kind": kind, "viewers": viewers, "cpu_percent": round(100 * used / elapsed, 2),
            "kbytes_per_s_per_viewer": round(statistics.mean(sizes) / total / 1024, 1)
            if sizes else 0.0,
            "encodes_per_s": round((enc1 - enc0) / elapsed, 2),
            "viewer_fps_mean": round(statistics.mean(fps), 2) if fps else 0.0,
            "viewer_fps_min": round(min(fps), 2) if fps else 0.0}


def first_frame_ms(port: int) -> float:
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\r\n"
                  .encode())
        buf = b""
        while b"\xff\xd9" not in buf:
            chunk = s.recv(262144)
            if not chunk:
                raise RuntimeError("stream closed before the first frame")
            buf += chunk
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="window per scenario")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "stream.json"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ps-bench-"))
    home = Home(root).ensure()
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
                status(base)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        proc = psutil.Process(web.pid)
        results = [measure(proc, base, port, n, args.seconds) for n in (0, 1, 5, 20)]
        h264 = [measure(proc, base, port, n, args.seconds, "h264") for n in (1, 20)]
        cold = []
        for _ in range(3):
            # past the linger (5 s) and the freshness limit (1 s): live frames are
            # unsubscribed and the last one is stale, so this waits for a new one
            time.sleep(7.5)
            cold.append(first_frame_ms(port))
        warm = [first_frame_ms(port) for _ in range(10)]
    finally:
        web.terminate()
        web.wait(10)
        pump.stop.set()
        pump.join(2)
        bus.close()
        shutil.rmtree(root, ignore_errors=True)

    by_n = {r["viewers"]: r for r in results}
    one, twenty = by_n[1]["cpu_percent"], by_n[20]["cpu_percent"]
    out = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "frame": "640x480 bgr24", "fps": FPS, "window_s": args.seconds,
        "scenarios": results,
        "h264_scenarios": h264,
        "ratio_20_to_1": round(twenty / one, 2) if one else None,
        "first_frame_ms": {
            "cold": [round(x, 1) for x in cold],  # frames unsubscribed: no viewer for >5 s
            "warm_p50": round(statistics.median(warm), 1), "warm_max": round(max(warm), 1)},
        "targets": {"ratio_20_to_1_max": 1.5, "encodes_with_0_viewers": 0,
                    "first_frame_ms_max": 300},
    }
    out["pass"] = {
        "ratio": out["ratio_20_to_1"] is not None and out["ratio_20_to_1"] <= 1.5,
        "zero_encoding": by_n[0]["encodes_per_s"] == 0,
        "first_frame": max(cold + warm) < 300,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    print("\nMJPEG viewers  web CPU %  encodes/s  viewer fps (mean/min)")
    for r in results:
        print(f"{r['viewers']:>13}  {r['cpu_percent']:>9}  {r['encodes_per_s']:>9}  "
              f"{r['viewer_fps_mean']}/{r['viewer_fps_min']}")
    for r in h264:
        print(f"h264 viewers {r['viewers']}: web CPU {r['cpu_percent']} %, "
              f"{r['kbytes_per_s_per_viewer']} KB/s per viewer, {r['viewer_fps_mean']} fps")
    print(f"MJPEG {by_n[1]['kbytes_per_s_per_viewer']} KB/s per viewer")
    print(f"20 viewers cost {out['ratio_20_to_1']}x one (target <= 1.5); first frame cold "
          f"{out['first_frame_ms']['cold']} ms, warm p50 {out['first_frame_ms']['warm_p50']} "
          f"ms (target < 300)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
