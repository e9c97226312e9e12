"""Scoring detection on labelled footage (``shared/eval``) and derived stress cases.

Used by ``bench/detect.py`` and the tests, so both score the same way, as the
footage's README says: a frame is positive when more than 0.5 % of its in-ROI
pixels are motion (CDnet value 255) or when its frame label says so; frames
before the scored range are warm-up (seen, not scored); the false-alarm rate
is over scored frames with no motion at all.

Stress cases are derived from the real frames with a fixed random seed, so
every run and every algorithm sees the same pixels:

- ``light_switch``: the light drops to 35 % a third of the way in, comes back
  at two thirds (both edges are instantaneous);
- ``dusk``: light ramps down to 15 % while sensor noise grows to sigma 8;
- ``ir_switch``: a third of the way in the picture turns into a night-vision
  image (luma from mostly the red channel, which near-infrared resembles,
  brighter, flatter contrast) and back at two thirds;
- ``shake``: every 60 frames, 12 frames shifted by up to 3 px in x and y.

Weather, insects, headlights and the other kinds of shake are random
processes drawn from a seed (``services.detect.derived``): score them over
several seeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from services.detect.derived import DERIVED_CASES, make_case

STRESS_CASES = ("light_switch", "dusk", "ir_switch", "shake")


@dataclass
class Sequence:
    name: str
    fps: float
    frames: list[Path]
    positive: list[bool | None]  # None: not scored (warm-up, ignored)
    empty: list[bool]  # no motion at all (for the false-alarm rate)


def default_eval_dir() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def load_sequence(folder: Path) -> Sequence:
    meta = json.loads((folder / "sequence.json").read_text())
    frames = sorted(folder.glob(meta["frames"]))
    n = len(frames)
    lo, hi = meta["eval_range"]
    gt = meta["gt"]
    positive: list[bool | None] = [None] * n
    empty = [False] * n
    if gt["type"] == "frame_labels":
        # Frame numbers are the file numbers, from 0.
        labels = {}
        for a, b in gt.get("positive", []):
            labels.update({i: True for i in range(a, b + 1)})
        ignore = {i for a, b in gt.get("ignore", []) for i in range(a, b + 1)}
        for i in range(n):
            if lo <= i <= hi and i not in ignore:
                positive[i] = labels.get(i, False)
                empty[i] = not positive[i]
    elif gt["type"] == "cdnet":
        # CDnet numbers frames from 1: input/in000001.jpg is frame 1.
        for i in range(n):
            num = i + 1
            if not lo <= num <= hi:
                continue
            mask = cv2.imread(str(folder / gt["pattern"].format(num=num)), cv2.IMREAD_GRAYSCALE)
            roi = np.count_nonzero(mask != 85)
            moving = np.count_nonzero(mask == 255)
            positive[i] = moving > 0.005 * roi
            empty[i] = moving == 0
    else:
        raise ValueError(f"{folder}: unknown ground truth type {gt['type']!r}")
    return Sequence(meta["name"], float(meta.get("fps", 15)), frames, positive, empty)


def stress_luma(bgr: np.ndarray, index: int, n: int, case: str,
                rng: np.random.Generator) -> np.ndarray:
    """The luma plane of frame ``index`` of ``n`` under stress ``case``."""
    luma = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    a, b = n // 3, 2 * n // 3
    if case == "none":
        return luma
    if case == "light_switch":
        return luma if not a <= index < b else cv2.convertScaleAbs(luma, alpha=0.35)
    if case == "dusk":
        t = index / max(1, n - 1)
        img = luma.astype(np.float32) * (1.0 - 0.85 * t)
        img += rng.normal(0.0, 1.0 + 7.0 * t, img.shape).astype(np.float32)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if case == "ir_switch":
        if not a <= index < b:
            return luma
        b_, g, r = cv2.split(bgr.astype(np.float32))
        ir = 0.15 * b_ + 0.25 * g + 0.6 * r
        ir = 255.0 * (ir / 255.0) ** 0.7 * 0.8 + 30.0
        return np.clip(ir, 0, 255).astype(np.uint8)
    if case == "shake":
        if index % 60 >= 12:
            return luma
        dx, dy = rng.integers(-3, 4, size=2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        return cv2.warpAffine(luma, m, (luma.shape[1], luma.shape[0]),
                              borderMode=cv2.BORDER_REPLICATE)
    raise ValueError(f"unknown stress case {case!r}")


def iter_luma(seq: Sequence, case: str = "none", seed: int = 7) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    derived = make_case(case, seed, seq.fps) if case in DERIVED_CASES else None
    n = len(seq.frames)
    for i, path in enumerate(seq.frames):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: cannot read")
        if derived is not None:
            yield derived(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), i)
        else:
            yield stress_luma(bgr, i, n, case, rng)


@dataclass
class Score:
    precision: float
    recall: float
    f1: float
    false_alarm_rate: float
    tp: int
    fp: int
    fn: int
    empty_frames: int
    false_alarms: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(self).items()}


def score(seq: Sequence, motion: list[bool]) -> Score:
    tp = fp = fn = fa = n_empty = 0
    for want, got, empty in zip(seq.positive, motion, seq.empty):
        if want is None:
            continue
        if want and got:
            tp += 1
        elif want:
            fn += 1
        elif got:
            fp += 1
        if empty:
            n_empty += 1
            fa += int(got)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, fa / n_empty if n_empty else 0.0, tp, fp, fn, n_empty, fa)
