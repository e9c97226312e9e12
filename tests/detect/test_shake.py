"""Shake compensation and moving light, on real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.config import DetectConfig
from services.detect.evalset import Sequence, iter_luma
from services.detect.pipeline import Detector
from services.detect.relight import relit
from services.detect.shake import Stabiliser


def _frames(seq: Sequence, n: int) -> list[np.ndarray]:
    out = []
    for i, luma in enumerate(iter_luma(seq)):
        if i >= n:
            break
        out.append(cv2.resize(luma, (160, 120), interpolation=cv2.INTER_AREA))
    return out


@pytest.mark.parametrize("shift", [(2.0, 1.0), (-1.5, 0.5), (0.7, -2.3)])
def test_stabiliser_measures_a_known_shift_and_undoes_it(trees: Sequence,
                                                         shift: tuple[float, float]) -> None:
    frame = _frames(trees, 101)[100]
    st = Stabiliser()
    st.align(frame)
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    moved = cv2.warpAffine(frame, m, (160, 120), borderMode=cv2.BORDER_REPLICATE)
    back, margins = st.align(moved)
    assert st.shift == pytest.approx(shift, abs=0.2)
    inner = (slice(8, -8), slice(8, -8))
    # Undoing a sub-pixel move interpolates twice, which no stabiliser avoids:
    # compare with the exact inverse move.
    exact = cv2.warpAffine(moved, np.float32([[1, 0, -shift[0]], [0, 1, -shift[1]]]),
                           (160, 120), flags=cv2.INTER_LINEAR)
    before = np.abs(moved[inner].astype(int) - frame[inner]).mean()
    ideal = np.abs(exact[inner].astype(int) - frame[inner]).mean()
    after = np.abs(back[inner].astype(int) - frame[inner]).mean()
    assert after < before / 1.5 and after <= ideal * 1.5 + 1.0, (before, ideal, after)
    assert margins[0] >= 2 and margins[1] >= 1


def test_stabiliser_leaves_a_still_camera_alone(highway: Sequence) -> None:
    st = Stabiliser()
    moved, largest = 0, 0.0
    for frame in _frames(highway, 300):
        _, margins = st.align(frame)
        moved += margins != (0, 0)
        largest = max(largest, *map(abs, st.shift))
    # Traffic is not a shake: at most a few frames nudged, never by a pixel.
    assert moved <= 10 and largest < 1.0, (moved, largest)


def test_a_pool_of_light_is_relit_and_a_person_is_not(trees: Sequence) -> None:
    frames = _frames(trees, 250)
    background, person = frames[200].astype(np.float32), frames[248]
    h, w = background.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pool = 1.0 + 1.2 * np.exp(-((xx - 60) ** 2 + (yy - 50) ** 2) / (2 * 25.0 ** 2))
    lit = np.clip(background * pool, 0, 255).astype(np.uint8)
    assert relit(lit, background, (30, 20, 60, 60))
    # The person walks in on frames 243-258, on the left half of the view.
    diff = cv2.absdiff(person, frames[200])
    ys, xs = np.nonzero(diff > 40)
    box = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
    assert not relit(person, background, box), box


def test_a_flat_background_never_counts_as_relit() -> None:
    background = np.full((40, 40), 100.0, np.float32)
    frame = np.full((40, 40), 180, np.uint8)
    assert not relit(frame, background, (0, 0, 40, 40))


def test_a_relit_box_takes_away_its_own_pixels_only(trees: Sequence) -> None:
    """Dropping a pool of light leaves the moving area of what else moves,
    however many loose specks lie inside the pool's rectangle."""
    background = _frames(trees, 201)[200]
    det = Detector(DetectConfig())
    det.process(background, 0.0)  # the working size (160x120) and regions
    h, w = background.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pool = 1.0 + 1.2 * np.exp(-((xx - 120) ** 2 + (yy - 60) ** 2) / (2 * 18.0 ** 2))
    frame = np.clip(background.astype(np.float32) * pool, 0, 255).astype(np.uint8)
    # Something standing on the left: the background's texture upside down.
    frame[20:100, 10:40] = background[20:100, 10:40][::-1]
    fg = np.zeros((h, w), np.uint8)
    fg[20:100, 10:40] = 255
    person_only = det.regions.blobs(fg.copy())
    # The pool's edge as the detector would see it, with specks of noise
    # inside its rectangle, each too small to be a blob.
    cv2.circle(fg, (120, 60), 20, 255, 2)
    for x in range(108, 134, 5):
        for y in range(48, 74, 5):
            fg[y, x] = 255
    blobs = det.regions.blobs(fg)
    assert len(blobs.boxes) == len(person_only.boxes) + 1
    kept = det._drop_relit(blobs, frame, background.astype(np.float32))
    assert kept.boxes == person_only.boxes
    assert kept.pixels == person_only.pixels > 0
    assert kept.box_pixels == person_only.box_pixels
