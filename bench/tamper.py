"""Camera-health benchmark: time to each tamper notice, and no notice on the
scenes that must not raise one.

    .venv/bin/python bench/tamper.py [--eval DIR] [--seeds 1,2,3] [--seconds 90]
                                     [--out bench/out/tamper.json]

Each shared sequence is played as a stream of ``--seconds`` at 15 fps (back
and forth over its frames, so it is long enough for the hold times), through
the same ``Detector`` the service runs, with the default settings. Tamper
cases (``services.detect.derived.Tamper``: cover, blind, blur, shift, freeze;
and "stop", where frames stop and the clock goes on) start a third of the
way in and end at two thirds: the row gives the seconds from the start to the
notice and from the end to its all-clear. Negative cases (the plain footage,
whose trees wave, and the light switch, dusk, IR switch, shake, headlight and
weather cases) must give no notice at all. The IR switch case tells the
detector that the IR light is on while it is, as the ir service does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.config import DetectConfig
from services.detect.derived import DERIVED_CASES, TAMPER_CASES, Tamper, make_case
from services.detect.evalset import default_eval_dir, load_sequence, stress_luma
from services.detect.pipeline import Detector

FPS = 15.0
NEGATIVES = ("none", "light_switch", "dusk", "ir_switch", *DERIVED_CASES)


def stream(frames: list[np.ndarray], n: int) -> list[int]:
    """Indices into ``frames`` back and forth, ``n`` long."""
    period = 2 * len(frames) - 2
    return [i % period if i % period < len(frames) else period - i % period for i in range(n)]


def run(bgr: list[np.ndarray], case: str, seed: int, seconds: float) -> dict[str, object]:
    n = int(seconds * FPS)
    start, end = n // 3, 2 * n // 3
    order = stream(bgr, n)
    rng = np.random.default_rng(seed)
    derived = make_case(case, seed, FPS) if case in DERIVED_CASES else None
    tamper = Tamper(case, rng, start, end) if case in TAMPER_CASES else None
    det = Detector(DetectConfig())
    assert det.health is not None
    notices: list[tuple[float, str, bool]] = []
    for i, k in enumerate(order):
        ts = i / FPS
        if case == "stop" and start <= i < end:
            notices += [(ts, f.kind, f.all_clear) for f in det.health.tick(ts)]
            continue
        if derived is not None:
            luma = derived(cv2.cvtColor(bgr[k], cv2.COLOR_BGR2GRAY), i)
        elif case in ("none", "light_switch", "dusk", "ir_switch"):
            luma = stress_luma(bgr[k], i, n, case, rng)
        else:
            luma = cv2.cvtColor(bgr[k], cv2.COLOR_BGR2GRAY)
        if tamper is not None:
            luma = tamper(luma, i)
        det.night = case == "ir_switch" and n // 3 <= i < 2 * n // 3
        res = det.process(luma, ts)
        notices += [(ts, f.kind, f.all_clear) for f in res.health]
    row: dict[str, object] = {"case": case, "seed": seed,
                              "notices": [[round(t, 2), k, c] for t, k, c in notices]}
    if case in (*TAMPER_CASES, "stop"):
        raised = [(t, k) for t, k, c in notices if not c]
        cleared = [(t, k) for t, k, c in notices if c]
        row["kind"] = raised[0][1] if raised else None
        row["seconds_to_notice"] = round(raised[0][0] - start / FPS, 2) if raised else None
        row["seconds_to_all_clear"] = (round(cleared[0][0] - end / FPS, 2) if cleared
                                       else None)
        row["notices_raised"] = len(raised)
    else:
        row["notices_raised"] = sum(1 for _, _, c in notices if not c)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", default=str(default_eval_dir()))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--cases", default=",".join((*TAMPER_CASES, "stop", *NEGATIVES)))
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "tamper.json"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    rows = []
    for folder in sorted(p for p in Path(args.eval).iterdir() if (p / "sequence.json").exists()):
        seq = load_sequence(folder)
        step = max(1, round(seq.fps / FPS))
        bgr = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in seq.frames[::step]]
        for case in [c for c in args.cases.split(",") if c]:
            for seed in seeds if case not in ("none", "light_switch", "stop") else seeds[:1]:
                row = {"sequence": seq.name, **run(bgr, case, seed, args.seconds)}
                rows.append(row)
                print(f"{seq.name:24s} {case:14s} seed={seed:<2d} raised={row['notices_raised']} "
                      f"kind={row.get('kind', '-')} to_notice={row.get('seconds_to_notice', '-')} "
                      f"to_clear={row.get('seconds_to_all_clear', '-')} "
                      f"{[n for n in row['notices']][:4] if row['notices_raised'] else ''}",
                      flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"fps": FPS, "seconds": args.seconds, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
