"""What every route of the web app works on: ``WebContext``.

The live hub, the health board, the event feed, the arm state as notify last
announced it, the catalogue (read-only: record owns it) and ``send``, which
publishes one command on web's bus endpoint. The service shell fills it from
the bus; tests build one on real state without a bus.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from common.arming import Arming, ArmingCommand, ArmingStore
from common.catalogue import CatalogueError, CatalogueReader
from common.config import Config
from common.paths import Home
from services.web.feed import EventFeed
from services.web.h264live import H264Channel
from services.web.health import HealthBoard
from services.web.live import LiveHub
from services.web.tuner import MotionTuner

MEDIA_SUFFIXES = {".mp4", ".jpg", ".jpeg", ".png"}


@dataclass
class WebContext:
    config: Config
    home: Home
    hub: LiveHub
    board: HealthBoard
    feed: EventFeed = field(default_factory=EventFeed)
    # Publishes one command (class and fields) on web's endpoint.
    send: Callable[..., None] = lambda cls, **fields: None
    arming_reply_seconds: float = 3.0  # how long notify (arming) or record (a verdict) may take
    clock: Callable[[], float] = time.time
    counters: dict[str, Any] = field(default_factory=dict)
    stopping: bool = False
    video: dict[str, H264Channel] = field(default_factory=dict)
    config_path: Path | None = None  # --config, else the home's config.toml
    settings_applier: Any = None  # set by routes.settings

    def __post_init__(self) -> None:
        self.arming = ArmingStore(self.home).load()  # then as notify announces it
        storage = self.config.record.storage_dir or self.home.recordings_dir
        self.media_root = Path(storage).expanduser().resolve()
        self._catalogue: CatalogueReader | None = None
        self.tuner = MotionTuner(self.config.detect,
                                 lambda cls, **fields: self.send(cls, **fields))

    @property
    def tls(self) -> bool:
        return bool(self.config.web.certfile_path)

    def catalogue(self) -> CatalogueReader:
        """Opened on first use: the record service may create it after we start."""
        if self._catalogue is None:
            try:
                self._catalogue = CatalogueReader(self.home.catalogue)
            except CatalogueError as exc:
                raise HTTPException(503, f"catalogue unavailable: {exc}") from None
        return self._catalogue

    async def change_arming(self, cls: type[ArmingCommand], **fields: float) -> Arming:
        """Ask notify, the owner of the arm state, for a change and answer with
        the state it announces: the page shows what every service follows."""
        sent = self.clock()
        self.send(cls, source="web", **fields)
        deadline = time.monotonic() + self.arming_reply_seconds
        while not (self.arming.changed_by == "web" and self.arming.changed_at >= sent):
            if time.monotonic() >= deadline:
                raise HTTPException(503, "notify did not confirm the change (is it running?); "
                                         "the arm state is unchanged")
            await asyncio.sleep(0.02)
        return self.arming

    def media_path(self, raw: str) -> Path | None:
        """``raw`` (relative to the recordings folder, or absolute from the
        catalogue) as a file inside it, or None: no traversal out of it."""
        try:
            candidate = (self.media_root / raw).resolve()
        except (OSError, ValueError):  # embedded NUL, loops
            return None
        if not candidate.is_relative_to(self.media_root):
            return None
        if candidate.suffix.lower() not in MEDIA_SUFFIXES or not candidate.is_file():
            return None
        return candidate

    def media_url(self, path: str) -> str | None:
        try:
            rel = Path(path).resolve().relative_to(self.media_root)
        except (ValueError, OSError):
            return None
        return "/media/" + urllib.parse.quote(str(rel))
