"""The motion tuner's side in web: the sensitivity sent to detect, and the
overlay detect sends back.

``MotionTuner`` holds the three tuning values web last sent for each
detection profile, day and night (at start, the config's), and sends them to
detect as ``Tune`` commands, one per profile, whenever they change: a page
tunes the profile detect is in, and repeating the day's values at night
changes nothing at night. While a page watches (``watch``), it sends an ``Overlay`` command
every ``REQUEST_EVERY`` seconds asking for ``MOTION_OVERLAY_SECONDS`` more of
overlays (and the ``Tune`` again, so a detect that restarted meanwhile
follows), so detect stops sending them soon after the last tuner closes and
sends none while nobody tunes. Each ``MotionOverlay`` becomes one JSON-able
dict, built once for every watcher.

Runs on the web service's event loop, like ``LiveChannel``; no locks.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from common.messages import TUNING_LIMITS, MotionOverlay, Overlay, Tune
from services.detect.profiles import PROFILES, profile_config

if TYPE_CHECKING:
    from common.config import DetectConfig


REQUEST_EVERY = 2.0
MOTION_OVERLAY_SECONDS = 5.0

Send = Callable[..., None]  # (command class, **fields): WebContext.send


def overlay_item(h: MotionOverlay, bits: bytes) -> dict[str, Any]:
    """What the tuner page draws: the header's fields and the packed bits."""
    return {"ts": h.ts, "width": h.width, "height": h.height, "boxes": h.boxes,
            "area": h.area, "moving": h.moving, "event": h.event,
            "tuning": {name: getattr(h, name) for name in TUNING_LIMITS},
            "profile": h.profile,
            "bits": base64.b64encode(bits).decode("ascii")}


class MotionTuner:
    def __init__(self, detect: DetectConfig, send: Send,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.values: dict[str, dict[str, Any]] = {
            profile: {name: getattr(profile_config(detect, profile), name)
                      for name in TUNING_LIMITS}
            for profile in PROFILES}
        self.send = send
        self.clock = clock
        self.viewers = 0
        self.overlays_in = 0
        self.bad_overlays = 0
        self._latest: dict[str, Any] | None = None
        self._changed = asyncio.Event()
        self._next_request = float("-inf")

    def set(self, values: dict[str, Any], profile: str) -> dict[str, Any]:
        """New values (already validated) for ``profile``, sent to detect at once."""
        self.values[profile] = {name: values[name] for name in TUNING_LIMITS}
        self._request()
        return self.values[profile]

    def wanted(self) -> bool:
        return self.viewers > 0

    def tick(self) -> None:
        """Called by the bus loop: keep the overlay coming while someone watches."""
        if self.viewers and self.clock() >= self._next_request:
            self._request()

    def _request(self) -> None:
        for profile, v in self.values.items():
            self.send(Tune, source="web", threshold=v["min_pixel_delta_trigger"],
                      min_area=v["min_trigger_area"], frames_to_start=v["frames_to_start"],
                      profile=profile)
        self.send(Overlay, source="web",
                  seconds=MOTION_OVERLAY_SECONDS if self.viewers else 0.0)
        self._next_request = self.clock() + REQUEST_EVERY

    # -- overlays ------------------------------------------------------------------
    def push(self, header: MotionOverlay, bits: bytes) -> None:
        """An overlay from detect; one that does not add up (its bits, its
        numbers) is counted in ``bad_overlays`` and dropped, so the page only
        ever draws what it can."""
        w, h = header.width, header.height
        boxes = header.boxes
        shaped = all(isinstance(box, list) and len(box) == 4 for box in boxes)
        numbers = [header.area, *(getattr(header, name) for name in TUNING_LIMITS),
                   *(v for box in boxes for v in box)] if shaped else []
        if not (shaped and 0 < w <= 4096 and 0 < h <= 4096 and len(bits) == -(-w * h // 8)
                and all(isinstance(v, int | float) and math.isfinite(v) for v in numbers)):
            self.bad_overlays += 1
            return
        self.overlays_in += 1
        self._latest = overlay_item(header, bits)
        self._changed.set()
        self._changed = asyncio.Event()

    async def next(self, after: int, timeout: float) -> tuple[int, dict[str, Any]] | None:
        """The newest overlay after number ``after`` (waits up to ``timeout``)."""
        if self._latest is None or self.overlays_in <= after:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                return None
        assert self._latest is not None
        return self.overlays_in, self._latest

    def watch(self) -> _Watch:
        """``with tuner.watch():`` counts a watcher and asks detect for overlays."""
        return _Watch(self)


class _Watch:
    def __init__(self, tuner: MotionTuner) -> None:
        self.tuner = tuner

    def __enter__(self) -> MotionTuner:
        self.tuner.viewers += 1
        if self.tuner.viewers == 1:
            self.tuner._request()
        return self.tuner

    def __exit__(self, *_: object) -> None:
        self.tuner.viewers -= 1
