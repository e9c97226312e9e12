"""Camera health: covered, blinded, out of focus, moved, frozen, offline, and a
night whose motion never stops.

Every check compares the picture with the camera's own reference for the
current profile (day, or night with the IR light on), built from the first
seconds of that profile and following slow change (dusk, seasons) while the
camera is healthy. The measures are chosen to be blind to what is not
tampering:

- the view is compared on a 40x30 thumbnail by normalised correlation, which
  ignores a gain and an offset (a light switch, dusk, the auto exposure) and
  small moving things (a tree, a person in the distance);
- sharpness is the mean Laplacian over the spread of the picture, so a
  darker or flatter light does not read as blur, and sensor noise reads as
  sharper, never blurred;
- covered is a picture that lost its structure (its spread fell far under
  the reference's and it no longer correlates with it), not merely a dark one;
- frozen is exactly identical frames: a working sensor never sends two;
- offline is no frame at all for ``offline_seconds`` (checked by the caller's
  clock, frames or not).

A condition is raised once it has held for its time and cleared once it has
been gone for ``CLEAR_SECONDS``; each raise and each clear is one ``Finding``
(the service turns it into a notice with a snapshot), and the same kind is
not raised again within ``repeat_minutes`` of its last raise.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from common.config import CameraHealthConfig

THUMB = (40, 30)
CHECK_SECONDS = 0.5  # the picture checks run this often (frozen and offline: every frame)
REFERENCE_SECONDS = 3.0  # a profile's reference is the mean of its first seconds
LEARN = 0.02  # per check, while healthy: the reference follows the scene over minutes
CLEAR_SECONDS = 3.0

TEXTS = {
    "covered": ("the camera's view is covered or dark: its picture has no detail left",
                "all clear: the camera's view is back"),
    "blinded": ("the camera is blinded: most of its picture is white",
                "all clear: the camera is no longer blinded"),
    "focus": ("the camera's picture is blurred (out of focus, dirty or fogged lens)",
              "all clear: the camera's picture is sharp again"),
    "moved": ("the camera was moved: its view no longer matches the usual one",
              "all clear: the camera's view matches the usual one again"),
    "frozen": ("the camera's picture is frozen (the same frame over and over)",
               "all clear: the camera's picture moves again"),
    "offline": ("the camera sends no pictures", "all clear: the camera sends pictures again"),
    "night_motion": ("motion all night that never stops: a spider web or an insect at the lens?",
                     "all clear: the endless night motion stopped"),
}


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # a key of TEXTS
    all_clear: bool
    text: str
    ts: float


@dataclass(slots=True)
class _Reference:
    thumb: np.ndarray | None = None
    edges: np.ndarray | None = None
    sum_edges: np.ndarray | None = None
    spread: float = 0.0
    sharpness: float = 0.0
    sum_thumb: np.ndarray | None = None
    sum_sharp: float = 0.0
    count: int = 0
    since: float | None = None


@dataclass(slots=True)
class _State:
    bad_since: float | None = None
    good_since: float | None = None
    raised: bool = False
    last_raise: float = float("-inf")


def _edges(image: np.ndarray) -> np.ndarray:
    """Where the picture's edges are, as a thumbnail: what a moved view changes
    even on a scene that looks alike everywhere (a road)."""
    gx = cv2.Sobel(image, cv2.CV_16S, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_16S, 0, 1, ksize=3)
    mag = cv2.addWeighted(cv2.convertScaleAbs(gx), 0.5, cv2.convertScaleAbs(gy), 0.5, 0)
    return cv2.resize(mag, (THUMB[0] * 2, THUMB[1] * 2),
                      interpolation=cv2.INTER_AREA).astype(np.float32)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 1e-6 else 0.0


class CameraHealth:
    def __init__(self, config: CameraHealthConfig) -> None:
        self.config = config
        self.refs: dict[str, _Reference] = {}
        self.states = {kind: _State() for kind in TEXTS}
        self.hold = {"covered": config.hold_seconds, "blinded": config.hold_seconds,
                     "frozen": config.hold_seconds, "focus": config.moved_seconds,
                     "moved": config.moved_seconds, "offline": 0.0,
                     "night_motion": 0.0}
        self._prev: np.ndarray | None = None
        self._identical_since: float | None = None
        self._next_check = float("-inf")
        self.last_frame: float | None = None
        self.measures: dict[str, float] = {}
        window = max(1, int(config.night_motion_minutes * 60 / CHECK_SECONDS))
        self._night: deque[bool] = deque(maxlen=window)

    # -- per frame --------------------------------------------------------------
    def frame(self, image: np.ndarray, ts: float, night: bool, moving: bool) -> list[Finding]:
        """One working image (uint8) at capture time ``ts``."""
        found: list[Finding] = []
        self.last_frame = ts
        found += self._judge("offline", False, ts)
        if self._prev is not None and self._prev.shape == image.shape and \
                cv2.norm(image, self._prev, cv2.NORM_INF) == 0:
            if self._identical_since is None:
                self._identical_since = ts
        else:
            self._identical_since = None
        if self._prev is None or self._prev.shape != image.shape:
            self._prev = image.copy()
        else:  # into the same buffer: no allocation per frame
            np.copyto(self._prev, image)
        frozen = self._identical_since is not None
        found += self._judge("frozen", frozen, ts, since=self._identical_since)
        if ts < self._next_check or frozen:
            return found
        self._next_check = ts + CHECK_SECONDS
        found += self._picture(image, ts, "night" if night else "day")
        if self.config.night_motion_minutes > 0:
            if night:
                self._night.append(moving)
            else:
                self._night.clear()
            full = len(self._night) == self._night.maxlen
            share = sum(self._night) / len(self._night) if self._night else 0.0
            if full or self.states["night_motion"].raised:
                found += self._judge("night_motion", share >= 0.9 if full else share >= 0.5, ts)
        return found

    def tick(self, now: float) -> list[Finding]:
        """Between frames: offline once none came for ``offline_seconds``."""
        if self.last_frame is None or self.config.offline_seconds <= 0:
            return []
        if now - self.last_frame >= self.config.offline_seconds:
            return self._judge("offline", True, now, since=self.last_frame)
        return []

    # -- the picture checks -----------------------------------------------------
    def _picture(self, image: np.ndarray, ts: float, profile: str) -> list[Finding]:
        thumb = cv2.resize(image, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
        edges = _edges(image)
        spread = float(image.std())
        lap = cv2.Laplacian(image, cv2.CV_16S, ksize=1)
        # The mean |Laplacian| as an exact integer sum (what np.abs().mean()
        # gave, to the bit), and the saturated pixels counted by OpenCV.
        sharpness = cv2.norm(lap, cv2.NORM_L1) / lap.size / (spread + 1.0)
        saturated = cv2.countNonZero(cv2.compare(image, 250, cv2.CMP_GE)) / image.size
        ref = self.refs.setdefault(profile, _Reference())
        if ref.thumb is None:  # still building this profile's reference
            if ref.since is None:
                ref.since, ref.sum_thumb = ts, np.zeros_like(thumb)
                ref.sum_edges = np.zeros_like(edges)
            assert ref.sum_thumb is not None and ref.sum_edges is not None
            if saturated < 0.5 and spread > 2.0:
                ref.sum_thumb += thumb
                ref.sum_edges += edges
                ref.sum_sharp += sharpness
                ref.count += 1
            if ts - ref.since >= REFERENCE_SECONDS and ref.count:
                ref.thumb = ref.sum_thumb / ref.count
                ref.edges = ref.sum_edges / ref.count
                ref.spread = float(ref.thumb.std())
                ref.sharpness = ref.sum_sharp / ref.count
            return []
        match = _ncc(thumb, ref.thumb)
        assert ref.edges is not None
        edge_match = _ncc(edges, ref.edges)
        tspread = float(thumb.std())
        self.measures = {"match": round(match, 3), "spread": round(tspread / max(ref.spread,
                                                                                  1e-3), 3),
                         "sharpness": round(sharpness / max(ref.sharpness, 1e-6), 3),
                         "saturated": round(saturated, 3), "edges": round(edge_match, 3)}
        blinded = saturated >= 0.5
        covered = not blinded and match < 0.5 and (tspread < 0.3 * ref.spread or spread < 3.0)
        # Blur keeps the view (the thumbnail still matches) but loses its edges;
        # a moved view loses the match, or at least keeps no edge where it was.
        focus = (not (blinded or covered) and match >= 0.5
                 and sharpness < 0.4 * ref.sharpness)
        moved = not (blinded or covered or focus) and (match < 0.4 or edge_match < 0.3)
        found = []
        for kind, bad in (("blinded", blinded), ("covered", covered), ("focus", focus),
                          ("moved", moved)):
            found += self._judge(kind, bad, ts)
        if not any(s.raised or s.bad_since is not None for s in self.states.values()):
            ref.thumb += LEARN * (thumb - ref.thumb)
            ref.edges += LEARN * (edges - ref.edges)
            ref.spread += LEARN * (tspread - ref.spread)
            ref.sharpness += LEARN * (sharpness - ref.sharpness)
        return found

    def _judge(self, kind: str, bad: bool, ts: float, since: float | None = None
               ) -> list[Finding]:
        st = self.states[kind]
        if bad:
            st.good_since = None
            if st.bad_since is None:
                st.bad_since = since if since is not None else ts
            held = ts - st.bad_since >= self.hold[kind]
            repeat = self.config.repeat_minutes * 60
            if held and not st.raised and ts - st.last_raise >= repeat:
                st.raised, st.last_raise = True, ts
                return [Finding(kind, False, TEXTS[kind][0], ts)]
            return []
        st.bad_since = None
        if not st.raised:
            return []
        if st.good_since is None:
            st.good_since = ts
        if ts - st.good_since >= (0.0 if kind == "offline" else CLEAR_SECONDS):
            st.raised = False
            return [Finding(kind, True, TEXTS[kind][1], ts)]
        return []
