"""What `Detector.process` costs, step by step, and whether a speed-up changed its output.

    .venv/bin/python bench/detect_cost.py steps [--repeats 3] [--src DIR]
    .venv/bin/python bench/detect_cost.py record FILE [--runs ten|all] [--src DIR]
    .venv/bin/python bench/detect_cost.py compare FILE [--runs ten|all] [--src DIR]

``steps``: CPU (process time) per frame of the whole ``Detector.process``
and of each of its steps (stabiliser, background, blobs, relight, tracks,
camera health), default settings, OpenCV on one thread, over the shared
footage fed at 320x240 (the lores stream; the detector works at 160x120):
highway as it is, the waving trees scaled up. Best of ``--repeats`` runs,
because the machine is shared; JSON in bench/out/detect_cost.json.

``record`` / ``compare``: the detector's output on every frame of 10 footage
runs (both sequences; plain, dusk and the old shake case at seed 7, the
derived shake_sway and headlights at seed 1) — motion, boxes, area, the
foreground mask, the gain and noise of the background model, event changes
and camera-health findings. ``record`` writes them to FILE (a pickle);
``compare`` runs again and says, per run, whether every frame is identical
(exit 1 if any differs). ``--runs all``: every case ``bench/detect.py`` scores
the default algorithm on (plain, the stress cases, the derived cases over
seeds 1,2,3: 52 runs), for a change that must leave all its figures as they are.
A performance change is meant to be bit-identical; if ``compare`` finds a
difference, run ``bench/detect.py`` before and after instead.

``--src DIR`` runs another checkout's detector (e.g. ``--src /work/main``)
through this script, so before and after are timed the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUNS = (("none", 7), ("dusk", 7), ("shake", 7), ("shake_sway", 1), ("headlights", 1))
SEQUENCES = ("cdnet_highway", "wallflower_wavingtrees")
LORES = (320, 240)
EVAL = ROOT.parent / "shared" / "eval"  # as services.detect.evalset finds it from here


def _frames_320(seq: object, iter_luma: object, cv2: object) -> list:
    out = []
    for f in iter_luma(seq):  # type: ignore[operator]
        if f.shape != (LORES[1], LORES[0]):
            f = cv2.resize(f, LORES, interpolation=cv2.INTER_AREA)  # type: ignore[attr-defined]
        out.append(f)
    return out


def _timed(spent: dict[str, float], obj: object, attr: str, label: str) -> None:
    """Add the CPU of every call of ``obj.attr`` to ``spent[label]``."""
    fn = getattr(obj, attr)

    def wrapper(*args: object, **kwargs: object) -> object:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.process_time() - t
    setattr(obj, attr, wrapper)


def steps(args: argparse.Namespace) -> dict[str, object]:
    import cv2

    from common.config import DetectConfig
    from services.detect.evalset import iter_luma, load_sequence
    from services.detect.pipeline import Detector

    eval_dir = args.eval
    report: dict[str, object] = {}
    for name in SEQUENCES:
        seq = load_sequence(Path(eval_dir) / name)
        frames = _frames_320(seq, iter_luma, cv2)
        best: dict[str, float] | None = None
        for _ in range(args.repeats):
            det = Detector(DetectConfig())
            spent: dict[str, float] = {}

            # The first frame sets the working size (and builds regions and
            # tracker anew), so the wrappers go on after it.
            det.process(frames[0], 0.0)
            _timed(spent, det.stabiliser, "align", "shake")
            _timed(spent, det.algorithm, "apply", "background")
            _timed(spent, det.regions, "blobs", "blobs")
            _timed(spent, det, "_drop_relit", "relight")
            _timed(spent, det.tracker, "update", "tracks")
            if det.health is not None:
                _timed(spent, det.health, "frame", "camera_health")
            t0 = time.process_time()
            for i, f in enumerate(frames[1:], 1):
                det.process(f, i / seq.fps)
            total = time.process_time() - t0
            n = len(frames) - 1
            row = {k: round(1000 * v / n, 4) for k, v in spent.items()}
            row["total"] = round(1000 * total / n, 4)
            if best is None or row["total"] < best["total"]:
                best = row
        assert best is not None
        report[name] = {"frames": len(frames) - 1, "size": list(LORES), **best}
        print(f"{name} ({len(frames) - 1} frames at {LORES[0]}x{LORES[1]}, CPU ms/frame, "
              f"best of {args.repeats})")
        for k, v in best.items():
            print(f"  {k:16s} {v:.3f}")
    return report


def _runs(which: str) -> list[tuple[str, int]]:
    if which == "ten":
        return list(RUNS)
    from services.detect.derived import DERIVED_CASES
    from services.detect.evalset import STRESS_CASES

    return ([("none", 7)] + [(c, 7) for c in STRESS_CASES]
            + [(c, seed) for c in DERIVED_CASES for seed in (1, 2, 3)])


def _outputs(eval_dir: str, which: str) -> dict[tuple[str, str, int], list[tuple]]:
    import cv2

    cv2.setNumThreads(1)
    from common.config import DetectConfig
    from services.detect.evalset import iter_luma, load_sequence
    from services.detect.pipeline import Detector

    out: dict[tuple[str, str, int], list[tuple]] = {}
    for name in SEQUENCES:
        seq = load_sequence(Path(eval_dir) / name)
        for case, seed in _runs(which):
            det = Detector(DetectConfig())
            rows = []
            for i, f in enumerate(iter_luma(seq, case, seed)):
                r = det.process(f, i / seq.fps)
                a = det.algorithm
                changes = [(c.phase, c.ts, c.boxes, c.area, c.score, c.labels, c.zones,
                            c.reason, c.loitering, c.crossings) for c in r.changes]
                health = [(h.kind, h.all_clear, h.ts) for h in r.health]
                rows.append((r.motion, r.raw, r.boxes, r.area, r.score, r.zones,
                             r.global_change, getattr(a, "gain", None),
                             getattr(a, "sigma", None),
                             None if r.fg is None else hashlib.blake2b(r.fg.tobytes()).digest(),
                             changes, health,
                             dict(det.health.measures) if det.health else None))
            out[(name, case, seed)] = rows
            print(f"{name:24s} {case:12s} seed {seed}: {len(rows)} frames", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("steps", help="CPU per frame, whole and per step")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "detect_cost.json"))
    for command in ("record", "compare"):
        p = sub.add_parser(command, help=f"{command} the output of 10 footage runs")
        p.add_argument("file")
        p.add_argument("--runs", choices=("ten", "all"), default="ten",
                       help="ten: the 10 runs above (~1 min); all: every case of "
                            "bench/detect.py for the default algorithm, derived ones "
                            "over seeds 1,2,3 (6-20 min)")
    for p in sub.choices.values():
        p.add_argument("--src", default=str(ROOT), help="checkout whose detector runs")
        p.add_argument("--eval", default=str(EVAL), help="the shared footage")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.src).resolve()))
    import cv2

    cv2.setNumThreads(1)
    if args.command == "steps":
        report = steps(args)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"src": str(Path(args.src).resolve()), **report}, indent=2))
        return 0
    if args.command == "record":
        with open(args.file, "wb") as fh:
            pickle.dump(_outputs(args.eval, args.runs), fh)
        return 0
    with open(args.file, "rb") as fh:
        ref = pickle.load(fh)
    now = _outputs(args.eval, args.runs)
    same = True
    for key, rows in ref.items():
        mine = now.get(key, [])
        diff = [i for i, (a, b) in enumerate(zip(rows, mine)) if a != b]
        if len(rows) != len(mine):
            diff.append(min(len(rows), len(mine)))
        same &= not diff
        print(f"{key[0]:24s} {key[1]:12s} seed {key[2]}: "
              + ("identical" if not diff else f"{len(diff)} frames differ, first {diff[:5]}"))
    print("IDENTICAL" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
