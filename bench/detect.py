"""Detection benchmark: every algorithm on the real footage and derived stress cases.

    .venv/bin/python bench/detect.py [--eval DIR] [--algorithms a,b] [--cases c,d]
                                     [--derived c,d] [--seeds 1,2,3]
                                     [--out bench/out/detect.json] [--no-latency] [--no-hog]

For each (sequence, case, algorithm): precision, recall, F1, false-alarm rate
on empty frames, and median / p95 ms per frame of the detector (the same
``Detector`` that the service and ``pisentry detect --replay`` run), with
OpenCV on one thread. It also measures, over real ZMQ sockets, the time from
a frame with motion leaving a publisher to the motion-start message arriving
(``latency``), and the CPU that HOG confirmation costs per confirmed event.

The derived cases (shake of three kinds, rain, snow, insects, headlights;
``services.detect.derived``) are random processes: each runs once per seed,
with the default algorithm only, and ``derived_summary`` gives per case the
worst false-alarm rate and the lowest recall over the seeds.

Timings are medians because this machine is shared (2 cores, other tests
running at the same time): read them as +-30 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.config import DetectConfig
from services.detect.algorithms import ALGORITHMS
from services.detect.derived import DERIVED_CASES
from services.detect.evalset import (
    STRESS_CASES,
    Sequence,
    default_eval_dir,
    iter_luma,
    load_sequence,
    score,
)
from services.detect.events import OnsetBackfill
from services.detect.pipeline import Detector


def run_detector(config: DetectConfig, seq: Sequence, frames: list[np.ndarray]
                 ) -> tuple[list[bool], list[float], int]:
    det = Detector(config)
    onsets = OnsetBackfill(det.start_frames)
    motion, ms, events = [], [], 0
    for i, luma in enumerate(frames):
        res = det.process(luma, i / seq.fps)
        started = any(c.phase == "start" for c in res.changes)
        motion += [m for m, _ in onsets.push(res.motion, res.raw, res.onset, i)]
        ms.append(res.ms)
        events += started
    motion += [m for m, _ in onsets.flush()]
    return motion, ms, events


def accuracy(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    eval_dir = Path(args.eval)
    for folder in sorted(p for p in eval_dir.iterdir() if (p / "sequence.json").exists()):
        seq = load_sequence(folder)
        for case in ["none", *args.cases]:
            frames = list(iter_luma(seq, case))
            for algo in args.algorithms:
                config = DetectConfig(algorithm=algo)
                motion, ms, events = run_detector(config, seq, frames)
                s = score(seq, motion)
                row = {"sequence": seq.name, "case": case, "algorithm": algo,
                       "width": frames[0].shape[1], "height": frames[0].shape[0],
                       **s.as_dict(), "events": events,
                       "ms_median": round(statistics.median(ms), 3),
                       "ms_p95": round(float(np.percentile(ms, 95)), 3)}
                rows.append(row)
                print(f"{seq.name:24s} {case:12s} {algo:16s} P={s.precision:.3f} "
                      f"R={s.recall:.3f} F1={s.f1:.3f} FA={s.false_alarm_rate:.4f} "
                      f"ev={events:3d} ms={row['ms_median']:.3f}", flush=True)
    return rows


def derived(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    eval_dir = Path(args.eval)
    for folder in sorted(p for p in eval_dir.iterdir() if (p / "sequence.json").exists()):
        seq = load_sequence(folder)
        for case in args.derived:
            for seed in args.seeds:
                frames = list(iter_luma(seq, case, seed))
                config = DetectConfig()
                t0 = time.process_time()
                motion, ms, events = run_detector(config, seq, frames)
                cpu = time.process_time() - t0
                s = score(seq, motion)
                row = {"sequence": seq.name, "case": case, "seed": seed, "algorithm": "default",
                       "width": frames[0].shape[1], "height": frames[0].shape[0],
                       **s.as_dict(), "events": events,
                       "ms_median": round(statistics.median(ms), 3),
                       "cpu_ms_per_frame": round(cpu * 1000 / len(frames), 3)}
                rows.append(row)
                print(f"{seq.name:24s} {case:14s} seed={seed:<3d} P={s.precision:.3f} "
                      f"R={s.recall:.3f} F1={s.f1:.3f} FA={s.false_alarm_rate:.4f} "
                      f"ev={events:3d} ms={row['ms_median']:.3f}", flush=True)
    return rows


def derived_summary(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    keys = sorted({(str(r["sequence"]), str(r["case"])) for r in rows})
    for seq_name, case in keys:
        mine = [r for r in rows if r["sequence"] == seq_name and r["case"] == case]
        out.append({"sequence": seq_name, "case": case, "seeds": len(mine),
                    "worst_false_alarm_rate": max(float(r["false_alarm_rate"]) for r in mine),
                    "false_alarms": sum(int(r["false_alarms"]) for r in mine),
                    "empty_frames": sum(int(r["empty_frames"]) for r in mine),
                    "lowest_recall": min(float(r["recall"]) for r in mine),
                    "mean_f1": round(statistics.mean(float(r["f1"]) for r in mine), 4)})
    return out


def hog_cost(args: argparse.Namespace) -> dict[str, object]:
    """CPU of HOG confirmation per confirmed event, on the person in wavingtrees."""
    seq = load_sequence(Path(args.eval) / "wallflower_wavingtrees")
    config = DetectConfig(confirm={"method": "hog", "interval_ms": 500})
    det = Detector(config)
    labels: set[str] = set()
    events = 0
    t0 = time.process_time()
    for i, path in enumerate(seq.frames):
        bgr = cv2.imread(str(path))
        luma = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        res = det.process(luma, i / seq.fps, image=lambda b=bgr: b)
        for c in res.changes:
            events += c.phase == "start"
            labels.update(c.labels)
    total = time.process_time() - t0
    return {"events": events, "labels": sorted(labels), "confirm_runs": det.confirm_runs,
            "confirm_cpu_ms_total": round(det.confirm_seconds * 1000, 2),
            "confirm_cpu_ms_per_event": round(det.confirm_seconds * 1000 / max(1, events), 2),
            "confirm_cpu_ms_per_run": round(det.confirm_seconds * 1000 / max(1, det.confirm_runs),
                                            2),
            "sequence_cpu_ms_total": round(total * 1000, 1)}


def latency(args: argparse.Namespace) -> dict[str, object]:
    """Frame published -> motion start received, through a running DetectService."""
    import tempfile
    import threading

    from common.bus import Bus
    from common.config import parse_config
    from common.messages import Frame, Motion
    from common.paths import Home
    from services.detect.service import DetectService

    seq = load_sequence(Path(args.eval) / "wallflower_wavingtrees")
    lumas = list(iter_luma(seq))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp)).ensure()
        config = parse_config({})
        for trial in range(args.latency_trials):
            bus = Bus(config, home)
            pub = bus.publisher("frames")
            sub = bus.subscriber(["detect"], [Motion.TOPIC])
            service = DetectService(config, home)
            thread = threading.Thread(target=service.loop, daemon=True)
            service.pub = service.bus.publisher("detect")
            service.setup()
            thread.start()
            time.sleep(0.3)  # subscriptions propagate
            start_sent: dict[int, float] = {}
            got = None
            for i, luma in enumerate(lumas[200:262]):
                yuv = np.vstack([luma, np.full((luma.shape[0] // 2, luma.shape[1]), 128,
                                               np.uint8)])
                ts = time.time()
                start_sent[i] = time.perf_counter()
                pub.publish(Frame, [yuv.tobytes()], ts=ts, width=luma.shape[1],
                            height=luma.shape[0], format="yuv420")
                deadline = time.perf_counter() + 1 / seq.fps
                while time.perf_counter() < deadline:
                    for msg in sub.recv(0.005):
                        if msg.header.phase == "start" and got is None:
                            got = (time.perf_counter(), msg.header.ts)
                if got:
                    break
            service.stop_requested = True
            thread.join(2)
            service._close()
            bus.close()
            if got:
                # Which frame triggered: the one whose ts the Motion carries.
                recv_t, _ = got
                trigger_index = max(k for k, t in start_sent.items() if t <= recv_t)
                results.append((recv_t - start_sent[trigger_index]) * 1000)
    return {"trials": len(results), "ms_median": round(statistics.median(results), 3)
            if results else None, "ms_max": round(max(results), 3) if results else None,
            "note": "time from publishing the frame that completes persistence to receiving "
                    "motion start; persistence itself is frames_to_start frames of capture"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", default=str(default_eval_dir()))
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--cases", default=",".join(STRESS_CASES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "detect.json"))
    parser.add_argument("--derived", default=",".join(DERIVED_CASES))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-hog", action="store_true")
    parser.add_argument("--latency-trials", type=int, default=5)
    args = parser.parse_args()
    args.algorithms = [a for a in args.algorithms.split(",") if a]
    args.cases = [c for c in args.cases.split(",") if c]
    args.derived = [c for c in args.derived.split(",") if c]
    args.seeds = [int(x) for x in args.seeds.split(",") if x]
    cv2.setNumThreads(1)
    report: dict[str, object] = {"opencv": cv2.__version__, "threads": 1,
                                 "rows": accuracy(args)}
    if args.derived:
        report["derived"] = derived(args)
        report["derived_summary"] = derived_summary(report["derived"])  # type: ignore[arg-type]
        for row in report["derived_summary"]:  # type: ignore[attr-defined]
            print("summary:", row)
    if not args.no_hog:
        report["hog"] = hog_cost(args)
        print("hog:", report["hog"])
    if not args.no_latency:
        report["latency"] = latency(args)
        print("latency:", report["latency"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
