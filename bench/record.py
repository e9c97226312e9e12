"""Benchmark of the record service: CPU and memory of the recorder process for
1080p30 h264 at 4 Mbit/s with 10 s of pre-roll, and the time from the end of
the post-roll to the ``recording/`` finished message.

The recorder runs as its own process (``pisentry record``) fed over the real
bus. The h264 is encoded once up front (software 1080p encoding would eat the
CPU being measured) and its GOPs are replayed in real time with fresh
timestamps. Usage::

    .venv/bin/python bench/record.py [--idle 20] [--events 3] [--out FILE]

Prints a JSON object (or writes it to FILE) and a short text report on stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.bus import Bus
from common.config import parse_config
from common.messages import Heartbeat, Motion, Recording, VideoPacket
from common.paths import Home
from services.capture.encoder import H264Encoder

W, H, FPS, BITRATE = 1920, 1080, 30.0, 4_000_000
BEFORE, AFTER, MOTION = 10.0, 5.0, 10.0
TICK = os.sysconf("SC_CLK_TCK")


def encode_gops(seconds: float) -> list[tuple[bytes, bool]]:
    enc = H264Encoder(W, H, FPS, 1.0, BITRATE)
    rng = np.random.default_rng(0)
    out: list[tuple[bytes, bool]] = []
    base = rng.integers(0, 255, (H // 8, W // 8, 3), np.uint8)
    for i in range(int(seconds * FPS)):
        small = np.roll(base, i * 2, axis=1)  # moving texture: a realistic, busy scene
        img = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)
        noise = rng.integers(0, 24, img.shape, np.uint8)
        out.extend(enc.encode(img + noise, int(i * 1e6 / FPS)))
    out.extend(enc.close())
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of video with no event")
    ap.add_argument("--events", type=int, default=3, help="events to record")
    ap.add_argument("--out", default="", help="write the JSON here (default: stdout)")
    args = ap.parse_args()

    print("encoding 2 s of 1080p30 h264 ...", file=sys.stderr)
    aus = encode_gops(2.0)
    bitrate = sum(len(a) for a, _ in aus) * 8 / 2.0
    tmp = Path(tempfile.mkdtemp(prefix="pisentry-bench-record-"))
    home = Home(tmp / "home").ensure()
    cfg_file = tmp / "pisentry.toml"
    cfg_file.write_text(f"[record]\nrec_sec_before = {BEFORE}\nrec_sec_after = {AFTER}\n"
                        "[record.retention]\nmin_free_mb = 0\n")
    config = parse_config({})
    bus = Bus(config, home)
    video = bus.publisher("video", hwm=1000)
    detect = bus.publisher("detect")
    sub = bus.subscriber(["record"], [Recording.TOPIC, Heartbeat.TOPIC])
    env = dict(os.environ, PISENTRY_HOME=str(home.root))
    proc = subprocess.Popen([sys.executable, "-m", "common.cli", "record", "--config",
                             str(cfg_file)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    pid = proc.pid
    heartbeats: list[Heartbeat] = []
    finished: list[tuple[float, Recording]] = []

    def pump() -> None:
        for msg in sub.read():
            if isinstance(msg.header, Heartbeat):
                heartbeats.append(msg.header)
            elif msg.header.phase == "finished":
                finished.append((time.time(), msg.header))

    deadline = time.time() + 20
    while not heartbeats and time.time() < deadline:
        for msg in sub.recv(0.1):
            if isinstance(msg.header, Heartbeat):
                heartbeats.append(msg.header)
    if not heartbeats:
        print("recorder did not start", file=sys.stderr)
        proc.kill()
        return 1
    rss_start = rss_mb(pid)

    t0 = time.time()
    pts0 = time.monotonic_ns() // 1000
    n = 0
    samples: list[tuple[str, float, float, float]] = []  # phase, wall, cpu, rss
    rss_peak = 0.0
    phase = "idle"
    stop_marks: list[float] = []  # wall time of the first packet past each post-roll

    def send_until(t_end: float, on_packet=None) -> None:
        nonlocal n, rss_peak
        next_sample = time.time()
        while True:
            due = t0 + n / FPS
            if due >= t_end:
                return
            time.sleep(max(0.0, due - time.time()))
            data, key = aus[n % len(aus)]
            ts = time.time()
            video.publish(VideoPacket, [data], ts=ts, pts=pts0 + int(n * 1e6 / FPS),
                          keyframe=key, width=W, height=H, fps=FPS)
            if on_packet:
                on_packet(ts)
            n += 1
            pump()
            if ts >= next_sample:
                next_sample = ts + 1.0
                rss = rss_mb(pid)
                rss_peak = max(rss_peak, rss)
                samples.append((phase, ts, cpu_seconds(pid), rss))

    # Idle: the pre-roll ring fills to 10 s (+ slack) and stays there.
    send_until(t0 + args.idle)
    idle_rss = rss_mb(pid)
    for k in range(args.events):
        phase = "event"
        start = time.time()
        detect.publish(Motion, ts=start, event_id=f"e{k}", phase="start")
        send_until(start + MOTION)
        end = time.time()
        detect.publish(Motion, ts=end, event_id=f"e{k}", phase="end")
        stop_at = end + AFTER
        marked = []

        def mark(ts: float, stop_at: float = stop_at, marked: list = marked) -> None:
            if ts >= stop_at and not marked:
                marked.append(ts)

        send_until(stop_at + 0.2, mark)
        stop_marks.append(marked[0] if marked else stop_at)
        phase = "idle"
        send_until(time.time() + 3.0)
    t_wait = time.time() + 5
    while len(finished) < args.events and time.time() < t_wait:
        sub.recv(0.1)
        pump()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    bus.close()

    def cpu_pct(which: str) -> float:
        pts = [s for s in samples if s[0] == which]
        runs = list(itertools.pairwise(pts))
        wall = sum(b[1] - a[1] for a, b in runs)
        cpu = sum(b[2] - a[2] for a, b in runs)
        return round(100 * cpu / wall, 2) if wall else 0.0

    # Ignore the first 12 s of idle (ring still filling, imports settling).
    steady = [s for s in samples if s[0] == "idle" and s[1] >= t0 + BEFORE + 2]
    idle_cpu = (round(100 * (steady[-1][2] - steady[0][2]) / (steady[-1][1] - steady[0][1]), 2)
                if len(steady) > 1 else 0.0)
    lat = [round((got - mark) * 1000, 1) for (got, _), mark in zip(finished, stop_marks)]
    preroll = [h.counters.get("preroll_bytes", 0) for h in heartbeats]
    clips = [{"duration": r.duration, "size": r.size} for _, r in finished]
    result = {
        "video": {"width": W, "height": H, "fps": FPS, "target_bitrate": BITRATE,
                  "measured_bitrate": round(bitrate)},
        "pre_roll_s": BEFORE, "post_roll_s": AFTER, "events": args.events,
        "cpu_percent_one_core": {"idle_preroll": idle_cpu, "recording": cpu_pct("event")},
        "rss_mb": {"at_start": round(rss_start, 1), "idle_full_preroll": round(idle_rss, 1),
                   "peak": round(rss_peak, 1)},
        "preroll_bytes_max": max(preroll) if preroll else 0,
        "finished_latency_ms": lat,
        "clips": clips,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    print(f"record bench: 1080p30 @ {bitrate / 1e6:.2f} Mbit/s, {BEFORE:.0f} s pre-roll\n"
          f"  CPU (one core): idle {idle_cpu:.2f} %, recording {cpu_pct('event'):.2f} %\n"
          f"  RSS: start {rss_start:.1f} MB, idle with full pre-roll {idle_rss:.1f} MB, "
          f"peak {rss_peak:.1f} MB (pre-roll ring up to "
          f"{result['preroll_bytes_max'] / 1e6:.1f} MB)\n"
          f"  end of post-roll -> finished message: {lat} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
