"""Detection below the camera's frame rate: what an analysis cap would cost.

    .venv/bin/python bench/detect_rate.py [--eval DIR] [--cap 15] [--cases c,d]
                                          [--derived c,d] [--seeds 1,2,3]
                                          [--out bench/out/detect_rate.json]

``capture.lores_fps`` lets capture send detection fewer frames than the camera
makes. Issue 12 allows a default cap only if the onset latency and the
detection figures on the shared footage hold. This runs the default detector
(the loop of ``bench/detect.py``'s ``run_detector``) on each sequence twice: on every frame,
and on the frames a cap of ``--cap`` fps lets through (every 2nd of the 30 fps
highway at 15; a 15 fps sequence is unchanged and reported as such). Each
camera frame is scored with the answer of the last analysed frame at or before
it, which is what an event's span gives every frame between two analysed ones.
Each analysed frame is passed with the camera frames it stands for
(``Detector.process(frames=...)``, what capture's ``Frame.skipped`` tells the
service), so the detector's per-frame constants keep their time.

Onset latency, offline: for each ground-truth onset (the first positive frame
after at least ``--onset-gap`` s without one, outside an open event), the
time from that frame to the analysed frame on which the event starts. The live
figure (``bench/capture.py peer``) adds transport and decode to it, a few ms;
the difference between the two rates is what the cap adds.

Cost (case none, ``--paced`` frames): CPU per analysed frame back to back and
with the frames at the camera's pace, the way the service gets them; the
paced figure is what the cap saves. Thread CPU time, x86 VM, not a Pi.
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


def analysed(n: int, fps: float, cap: float) -> list[int]:
    """The frame indices a ``cap`` fps limit passes of an ``n``-frame ``fps``
    camera: capture's RateLimit on the frames' own times."""
    if cap <= 0 or cap >= fps:
        return list(range(n))
    period, nxt, out = 1.0 / cap, float("-inf"), []
    for i in range(n):
        ts = i / fps
        if ts < nxt - 0.2 * period:
            continue
        nxt = ts + period if ts - nxt >= period else nxt + period
        out.append(i)
    return out


def detect_at(config: DetectConfig, seq: Sequence, frames: list[np.ndarray], keep: list[int]
              ) -> tuple[list[bool], list[int], float]:
    """Per camera frame: motion (held from the last analysed frame), the camera
    frame index of each event start, and the mean ms per analysed frame. The
    loop is ``bench/detect.py``'s ``run_detector`` with each analysed frame at
    its camera time (on every frame it gives the same answers)."""
    det = Detector(config)
    onsets = OnsetBackfill(det.start_frames)
    answers: list[tuple[bool, object]] = []
    starts: list[int] = []
    ms = []
    prev = -1
    for i in keep:
        # Each analysed frame stands for the camera frames since the last one
        # (Frame.skipped + 1, as capture sends it).
        res = det.process(frames[i], i / seq.fps, frames=i - prev if prev >= 0 else 1)
        prev = i
        ms.append(res.ms)
        if any(c.phase == "start" for c in res.changes):
            starts.append(i)
        answers += onsets.push(res.motion, res.raw, res.onset, i)
    answers += onsets.flush()
    motion = [False] * len(frames)
    for (m, i), nxt in zip(answers, [*keep[1:], len(frames)], strict=True):
        motion[int(i):nxt] = [m] * (nxt - int(i))  # type: ignore[call-overload]
    return motion, starts, statistics.mean(ms)


def paced_cost(seq: Sequence, frames: list[np.ndarray], keep: list[int], count: int
               ) -> dict[str, float]:
    """CPU per analysed frame with the frames coming at the camera's pace (a
    sleep until each one's time), as in the service, and back to back, as
    above: between two frames the caches go cold, which costs the live
    service more per frame than any back-to-back timing shows."""
    out = {}
    for label, paced in (("back_to_back_ms", False), ("paced_ms", True)):
        det = Detector(DetectConfig())
        cpu = []
        t0 = time.monotonic()
        prev = -1
        for i in keep[:count]:
            if paced:
                time.sleep(max(0.0, t0 + (i - keep[0]) / seq.fps - time.monotonic()))
            t = time.thread_time()
            det.process(frames[i], i / seq.fps, frames=i - prev if prev >= 0 else 1)
            prev = i
            cpu.append(time.thread_time() - t)
        out[label] = round(1000 * statistics.mean(cpu[len(cpu) // 5:]), 3)  # after warm-up
    return out


def onsets(seq: Sequence, gap_s: float) -> list[int]:
    out, last_pos = [], None
    gap = max(1, round(gap_s * seq.fps))
    for i, p in enumerate(seq.positive):
        if p:
            if last_pos is None or i - last_pos > gap:
                out.append(i)
            last_pos = i
    return out


def onset_latencies(seq: Sequence, motion_every: list[bool], starts: list[int],
                    gap_s: float) -> list[float | None]:
    """Seconds from each onset to its event's start; None when an event was
    already open at the onset (judged on the every-frame run, so both rates
    are asked about the same onsets) or none started within 2 s."""
    out: list[float | None] = []
    for k in onsets(seq, gap_s):
        if k > 0 and motion_every[k - 1]:
            out.append(None)
            continue
        nxt = [s for s in starts if k - round(0.5 * seq.fps) <= s <= k + round(2 * seq.fps)]
        out.append(round((nxt[0] - k) / seq.fps, 3) if nxt else None)
    return out


def p95(xs: list[float]) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 3)


def one(seq: Sequence, case: str, seed: int | None, cap: float, gap: float, paced: int
        ) -> dict[str, object]:
    frames = list(iter_luma(seq, case, seed) if seed is not None else iter_luma(seq, case))
    config = DetectConfig()
    row: dict[str, object] = {"sequence": seq.name, "case": case, "seed": seed, "fps": seq.fps}
    every = list(range(len(frames)))
    keep = analysed(len(frames), seq.fps, cap)
    m_all, s_all, ms_all = detect_at(config, seq, frames, every)
    base_lat = onset_latencies(seq, m_all, s_all, gap)
    for label, idx in (("every", every), ("capped", keep)):
        if label == "capped" and idx == every:
            row["capped"] = "same frames"
            break
        m, s, ms = (m_all, s_all, ms_all) if label == "every" else detect_at(config, seq, frames,
                                                                              idx)
        sc = score(seq, m)
        lat = base_lat if label == "every" else onset_latencies(seq, m_all, s, gap)
        row[label] = {"analysed_fps": round(seq.fps * len(idx) / len(frames), 2),
                      **sc.as_dict(), "events": len(s), "ms_per_analysed_frame": round(ms, 3),
                      "onset_latency_s": lat}
        if paced and case == "none":
            cost = paced_cost(seq, frames, idx, paced)
            row[label].update(cost)  # type: ignore[union-attr]
            row[label]["paced_cpu_pct"] = round(  # type: ignore[index]
                cost["paced_ms"] * seq.fps * len(idx) / len(frames) / 10, 2)
    return row


def line(row: dict[str, object], label: str) -> str:
    r = row[label]
    if not isinstance(r, dict):
        return f"{label:6s} {r}"
    lat = [x for x in r["onset_latency_s"] if x is not None]
    paced = (f" cpu/frame back-to-back={r['back_to_back_ms']:.3f} paced={r['paced_ms']:.3f} ms"
             f" ({r['paced_cpu_pct']:.2f} % of a core)"
             if "paced_ms" in r else "")
    return (f"{label:6s} @{r['analysed_fps']:5.2f} P={r['precision']:.3f} R={r['recall']:.3f} "
            f"F1={r['f1']:.3f} FA={r['false_alarm_rate']:.4f} ev={r['events']:2d} "
            f"onset={lat} ms={r['ms_per_analysed_frame']:.3f}{paced}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", default=str(default_eval_dir()))
    parser.add_argument("--cap", type=float, default=15.0, help="analysis cap, fps")
    parser.add_argument("--cases", default=",".join(STRESS_CASES))
    parser.add_argument("--derived", default=",".join(DERIVED_CASES))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--sequences", default="cdnet_highway,wallflower_wavingtrees")
    parser.add_argument("--onset-gap", type=float, default=1.0)
    parser.add_argument("--paced", type=int, default=450,
                        help="analysed frames timed at the camera's pace, case none (0: not)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "detect_rate.json"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rows = []
    for name in [s for s in args.sequences.split(",") if s]:
        seq = load_sequence(Path(args.eval) / name)
        jobs: list[tuple[str, int | None]] = [("none", None)]
        jobs += [(c, None) for c in args.cases.split(",") if c]
        jobs += [(c, int(s)) for c in args.derived.split(",") if c
                 for s in args.seeds.split(",") if s]
        for case, seed in jobs:
            row = one(seq, case, seed, args.cap, args.onset_gap, args.paced)
            rows.append(row)
            tag = f"{seq.name} {case}" + (f" seed={seed}" if seed is not None else "")
            print(f"{tag:40s} {line(row, 'every')}", flush=True)
            print(f"{'':40s} {line(row, 'capped')}", flush=True)
    summary = []
    for name in sorted({str(r["sequence"]) for r in rows}):
        mine = [r for r in rows if r["sequence"] == name and isinstance(r.get("capped"), dict)]
        if not mine:
            summary.append({"sequence": name, "capped": "same frames"})
            continue
        d = {"sequence": name, "runs": len(mine)}
        for label in ("every", "capped"):
            lat = [x for r in mine for x in r[label]["onset_latency_s"] if x is not None]
            d[label] = {"min_f1": min(r[label]["f1"] for r in mine),
                        "worst_fa": max(r[label]["false_alarm_rate"] for r in mine),
                        "onset_p95_s": p95(lat), "onsets": len(lat)}
        d["worse_f1"] = [f"{r['case']}/{r['seed']}: {r['every']['f1']:.3f}->{r['capped']['f1']:.3f}"
                         for r in mine if r["capped"]["f1"] < r["every"]["f1"] - 0.005]
        d["worse_fa"] = [f"{r['case']}/{r['seed']}: {r['every']['false_alarm_rate']:.4f}->"
                         f"{r['capped']['false_alarm_rate']:.4f}"
                         for r in mine if r["capped"]["false_alarm_rate"]
                         > r["every"]["false_alarm_rate"] + 1e-9]
        summary.append(d)
        print("summary:", json.dumps(d))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cap": args.cap, "rows": rows, "summary": summary}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
