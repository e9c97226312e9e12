"""Reads a source on its own thread, so a camera that blocks or drops never
stalls the capture loop, and reopens it with back-off when it fails."""

from __future__ import annotations

import logging
import threading

from common.worker import Inbox
from services.capture.sources import Captured, Source, SourceError

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.5


class SourceReader:
    def __init__(self, source: Source, max_backoff: float, opened: bool = False) -> None:
        self.source = source
        self.max_backoff = max_backoff
        # Newest wins: a capture loop that fell behind gets the latest frames
        # (frames.replaced counts those dropped before the loop took them).
        self.frames: Inbox[Captured] = Inbox(keep=2)
        self.state = "streaming" if opened else "connecting"
        self.reconnects = 0
        self.last_error = ""
        self._opened = opened
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="source-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.source.close()
        self.frames.close()

    def _run(self) -> None:
        backoff = FIRST_BACKOFF
        while not self._stop.is_set():
            if not self._opened:
                try:
                    self.source.open()
                except SourceError as exc:
                    self._failed(exc, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                self._opened = True
                if self.state != "connecting":
                    self.reconnects += 1
                    log.info("source back after %s", self.last_error)
            try:
                captured = self.source.read()
            except SourceError as exc:
                self._failed(exc, backoff)
                self.source.close()
                self._opened = False
                continue
            backoff = FIRST_BACKOFF
            self.state = "streaming"
            self.frames.put(captured)

    def _failed(self, exc: SourceError, backoff: float) -> None:
        if self.state != "reconnecting":
            log.warning("source failed: %s; retrying with back-off up to %.0f s",
                        exc, self.max_backoff)
        self.state = "reconnecting"
        self.last_error = str(exc)
