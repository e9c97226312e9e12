"""What the detect service costs per frame around ``Detector.process``.

    .venv/bin/python bench/detect_service.py [--case highway] [--size 320x240]
                                             [--frames 600] [--fps 30]

The real ``DetectService`` (its config view, bus, loop, heartbeats and tick)
runs in this process's main thread on real ipc sockets; a second thread
publishes the shared footage as capture sends an MJPEG camera's streams: the
lores frames (grey, ``--size``) at ``--fps`` in real time and, at
``capture.live_fps``, the camera's own JPEG (``--live-size``, q90) as the
live frame that detect keeps for snapshots. The service thread's CPU time is
split into ``Detector.process`` and the rest (receive, decode, dispatch,
poll wake-ups, tick, heartbeats): that rest is the shell's per-frame
overhead, the figure this bench exists for. Thread CPU time, so the
publisher and other work on the machine do not count in either.

JSON in ``bench/out/detect_service.json``. x86 only; nothing here ran on a Pi.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.capture import CASES, EVAL, OUT
from common.bus import Bus
from common.config_view import load_view
from common.messages import Frame, LiveFrame
from common.paths import Home
from services.detect.service import DetectService


def footage(case: str, size: tuple[int, int], live: tuple[int, int], count: int
            ) -> list[tuple[np.ndarray, bytes]]:
    """(grey lores, camera JPEG) per frame."""
    folder, pattern, _ = CASES[case]
    files = sorted((EVAL / folder).glob(pattern))[:count]
    if not files:
        raise SystemExit(f"no frames under {EVAL / folder}")
    out = []
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        jpeg = cv2.imencode(".jpg", cv2.resize(img, live, interpolation=cv2.INTER_LINEAR),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        grey = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), size,
                          interpolation=cv2.INTER_AREA)
        out.append((grey, jpeg))
    return out


class Timed(DetectService):
    """The service as it runs, with its thread's CPU time taken around the
    loop and around each ``Detector.process``."""

    def setup(self) -> None:
        super().setup()
        self.process_cpu = 0.0
        self.processed = 0
        process = self.detector.process

        def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.thread_time()
            try:
                return process(*args, **kw)
            finally:
                self.process_cpu += time.thread_time() - t0
                self.processed += 1

        self.detector.process = timed  # type: ignore[method-assign]

    def loop(self) -> None:
        t0 = time.thread_time()
        try:
            super().loop()
        finally:
            self.loop_cpu = time.thread_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="highway", choices=sorted(CASES))
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--live-size", default="640x480")
    ap.add_argument("--out", default=str(OUT / "detect_service.json"))
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    lw, lh = (int(x) for x in args.live_size.split("x"))
    frames = footage(args.case, (w, h), (lw, lh), args.frames)
    with tempfile.TemporaryDirectory(prefix="pisentry-detect-bench-") as tmp:
        home = Home(Path(tmp)).ensure()
        os.environ["PISENTRY_HOME"] = tmp
        config = load_view(None)  # what the live service runs on
        service = Timed(config, home)
        bus = Bus(config, home)
        pub = bus.publisher("frames")
        sent = 0
        live_period = 1.0 / config.capture.live_fps

        def feed() -> None:
            nonlocal sent
            time.sleep(1.0)  # the service subscribes
            t0 = time.monotonic()
            next_live = 0.0
            for i, (luma, jpeg) in enumerate(frames):
                delay = t0 + i / args.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ts = time.time()
                pub.publish(Frame, [luma.copy()], ts=ts, width=w, height=h, format="gray")
                if ts >= next_live:
                    next_live = max(next_live + live_period, ts)
                    pub.publish(LiveFrame, [jpeg], ts=ts, width=lw, height=lh, format="jpeg")
                sent += 1
            time.sleep(0.5)  # the last frames arrive
            service.request_stop()

        feeder = threading.Thread(target=feed)
        feeder.start()
        load = os.getloadavg()
        service.run()
        feeder.join()
        bus.close()
    n = max(1, service.processed)
    rest = service.loop_cpu - service.process_cpu
    result = {"case": args.case, "size": args.size, "fps": args.fps, "sent": sent,
              "live": f"{args.live_size} jpeg at {config.capture.live_fps:g} fps",
              "processed": service.processed,
              "ms_per_frame": {"Detector.process": round(1000 * service.process_cpu / n, 3),
                               "service shell (the rest of the loop)": round(1000 * rest / n, 3),
                               "whole loop": round(1000 * service.loop_cpu / n, 3)},
              "loadavg_at_start": [round(x, 2) for x in load],
              "host": "x86 VM (2 cores, shared)", "pi": "not measured"}
    print(f"{args.case} {args.size} grey @{args.fps:g}: {service.processed} of {sent} frames "
          f"processed, load {load[0]:.2f}; ms CPU per frame:")
    for name, ms in result["ms_per_frame"].items():
        print(f"  {name:<40} {ms:7.3f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
