"""One-hop cost of the pisentry bus against plain pyzmq.

For each payload (320x240 gray, 640x480 BGR, 1920x1080 YUV420) and transport
(ipc, tcp with CURVE as the bus always uses it, and plain tcp for reference)
it measures, publisher and subscriber in separate processes:

- throughput: back-to-back messages, unlimited queues, MB/s at the subscriber;
- latency: 100 messages/s, receive time minus the header's ts, p50 and p99.

"raw" sends ``[topic, msgpack(header dict), payload]`` with pyzmq directly;
"bus" goes through ``Publisher.publish`` / ``Subscriber.read`` with the typed,
validated headers. The bus should stay within 20% of raw.

    python bench/bus.py [--quick] [--out bench/out/bus.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.bus import Bus
from common.config import parse_config
from common.messages import Frame
from common.paths import Home

PAYLOADS = {
    "320x240 gray": (240, 320),
    "640x480 bgr": (480, 640, 3),
    "1920x1080 yuv420": (1620, 1920),
}
TOPIC = Frame.TOPIC


def _config(transport: str, home: Home, port: int, keys: tuple[str, str]) -> dict:
    if transport == "ipc":
        return {}
    raw: dict = {"bus": {"endpoints": {"frames": f"tcp://127.0.0.1:{port}"}}}
    if transport == "tcp+curve":
        raw["bus"]["curve"] = {"public_key": keys[0], "secret_key": keys[1]}
    return raw


def _endpoint(transport: str, home: Home, port: int) -> str:
    return f"ipc://{home.run_dir}/frames.sock" if transport == "ipc" else \
        f"tcp://127.0.0.1:{port}"


def _raw_socket(ctx: zmq.Context, kind: int, transport: str, keys: tuple[str, str],
                server: bool) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.SNDHWM if kind == zmq.PUB else zmq.RCVHWM, 0)
    sock.setsockopt(zmq.LINGER, 0)
    if transport == "tcp+curve":
        if server:
            sock.curve_server = True
            sock.curve_publickey, sock.curve_secretkey = keys[0].encode(), keys[1].encode()
        else:
            pub, sec = zmq.curve_keypair()
            sock.curve_serverkey = keys[0].encode()
            sock.curve_publickey, sock.curve_secretkey = pub, sec
    return sock


def _subscriber(mode: str, transport: str, home_root: str, port: int, keys: tuple[str, str],
                count: int, ready: mp.Event, results: mp.Queue) -> None:
    home = Home(Path(home_root))
    ctx = zmq.Context()
    latencies: list[float] = []
    total_bytes = 0
    if mode == "bus":
        bus = Bus(parse_config(_config(transport, home, port, keys)), home, context=ctx)
        sub = bus.subscriber(["frames"], [TOPIC], hwm=0)

        def receive() -> list[tuple[float, int]]:
            return [(m.header.ts, len(m.payload[0])) for m in sub.read()]
        poll_sock = sub.socket
    else:
        sock = _raw_socket(ctx, zmq.SUB, transport, keys, server=False)
        sock.setsockopt(zmq.SUBSCRIBE, TOPIC)
        sock.connect(_endpoint(transport, home, port))

        def receive() -> list[tuple[float, int]]:
            out = []
            while True:
                try:
                    parts = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    return out
                header = msgpack.unpackb(parts[1].buffer)
                out.append((header["ts"], len(parts[2].buffer)))
        poll_sock = sock
    # warm-up: wait for the first message, then tell the publisher to start
    while not receive():
        poll_sock.poll(100)
    ready.set()
    got = 0
    start = None
    while got < count:
        if not poll_sock.poll(5000):
            break
        for ts, size in receive():
            now = time.time()
            if ts < 0:  # a warm-up straggler
                continue
            if start is None:
                start = now
            latencies.append(now - ts)
            total_bytes += size
            got += 1
    elapsed = time.time() - (start or time.time())
    results.put({"received": got, "bytes": total_bytes, "elapsed": elapsed,
                 "latencies": latencies})


def _run_case(mode: str, transport: str, shape: tuple[int, ...], count: int,
              paced_hz: float | None) -> dict:
    home = Home(Path(tempfile.mkdtemp(prefix="psb-"))).ensure()
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    keys = tuple(k.decode() for k in zmq.curve_keypair())
    ready, results = mp.Event(), mp.Queue()
    child = mp.Process(target=_subscriber, args=(mode, transport, str(home.root), port, keys,
                                                 count, ready, results))
    ctx = zmq.Context()
    frame = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    if mode == "bus":
        bus = Bus(parse_config(_config(transport, home, port, keys)), home, context=ctx)
        pub = bus.publisher("frames", hwm=0)

        def send(ts: float) -> None:
            pub.publish(Frame, [frame], ts=ts, width=shape[1], height=shape[0],
                        format="gray")
    else:
        sock = _raw_socket(ctx, zmq.PUB, transport, keys, server=True)
        sock.bind(_endpoint(transport, home, port))
        seq = 0

        def send(ts: float) -> None:
            nonlocal seq
            header = msgpack.packb({"v": 1, "camera": "cam1", "seq": seq, "ts": ts,
                                    "width": shape[1], "height": shape[0], "format": "gray"})
            sock.send_multipart([TOPIC, header, frame], copy=False)
            seq += 1
    child.start()
    while not ready.wait(0.05):
        send(-1.0)
    time.sleep(0.05)
    for _ in range(count):
        send(time.time())
        if paced_hz:
            time.sleep(1.0 / paced_hz)
    out = results.get(timeout=120)
    child.join(10)
    ctx.destroy(linger=0)
    lat = sorted(out["latencies"])
    return {
        "received": out["received"],
        "mb_per_s": out["bytes"] / out["elapsed"] / 1e6 if out["elapsed"] > 0 else None,
        "msg_per_s": out["received"] / out["elapsed"] if out["elapsed"] > 0 else None,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    parser.add_argument("--out", default="bench/out/bus.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mp.set_start_method("fork")
    rows = []
    for name, shape in PAYLOADS.items():
        size = int(np.prod(shape))
        count = max(50, int((150e6 if args.quick else 600e6) // size))
        for transport in ("ipc", "tcp+curve", "tcp"):
            row = {"payload": name, "bytes": size, "transport": transport}
            # The bus never speaks plain tcp; that row is raw pyzmq for reference only.
            modes = ("raw",) if transport == "tcp" else ("raw", "bus")
            for mode in modes:
                runs = [_run_case(mode, transport, shape, count, None)
                        for _ in range(args.repeats)]
                row[f"{mode}_mb_per_s"] = statistics.median(r["mb_per_s"] for r in runs)
                paced = _run_case(mode, transport, shape, 100 if args.quick else 200, 100.0)
                row[f"{mode}_p50_ms"], row[f"{mode}_p99_ms"] = paced["p50_ms"], paced["p99_ms"]
            line = (f"{name:18} {transport:9} raw {row['raw_mb_per_s']:7.0f} MB/s "
                    f"p50 {row['raw_p50_ms']:.2f} p99 {row['raw_p99_ms']:.2f} ms")
            if "bus" in modes:
                row["bus_vs_raw_throughput"] = row["bus_mb_per_s"] / row["raw_mb_per_s"]
                line += (f" | bus {row['bus_mb_per_s']:7.0f} MB/s p50 {row['bus_p50_ms']:.2f} "
                         f"p99 {row['bus_p99_ms']:.2f} ms | bus/raw "
                         f"{row['bus_vs_raw_throughput']:.2f}")
            rows.append(row)
            print(line, flush=True)
    result = {"benchmark": "bus", "machine": {"platform": platform.platform(),
                                              "cpus": mp.cpu_count(),
                                              "python": platform.python_version(),
                                              "pyzmq": zmq.__version__,
                                              "libzmq": zmq.zmq_version()},
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
