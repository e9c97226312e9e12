"""Training mode: each event a user labels in the chat (real or false alarm)
saved as a picture and its metadata, ``$PISENTRY_HOME/dataset/<verdict>/
<event>.jpg`` and ``.json``, to train or tune a detector on later.

The picture is the recorder's copy of the event snapshot (found through the
catalogue, read-only), or the one an earlier verdict saved: relabelled, the
newest verdict wins and the file moves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from common.catalogue import CatalogueReader
from common.paths import Home

log = logging.getLogger(__name__)


class DataSet:
    def __init__(self, home: Home, camera: str, clock: Callable[[], float]) -> None:
        self.root = home.root / "dataset"
        self.catalogue = home.catalogue
        self.camera = camera
        self.clock = clock

    def save(self, event_id: str, verdict: str, ts: float, labels: list[str],
             zones: list[str]) -> bool:
        """False when there is no picture of the event to save."""
        safe = "".join(c for c in event_id if c.isalnum() or c in "-_")[:64] or "event"
        earlier = list(self.root.glob(f"*/{safe}.jpg"))
        jpeg = earlier[0].read_bytes() if earlier else self._event_snapshot(event_id)
        if jpeg is None:
            return False
        folder = self.root / verdict
        folder.mkdir(parents=True, exist_ok=True)
        for other in earlier:
            if other.parent != folder:
                other.unlink(missing_ok=True)
                other.with_suffix(".json").unlink(missing_ok=True)
        (folder / f"{safe}.jpg").write_bytes(jpeg)
        meta = {"event_id": event_id, "verdict": verdict, "camera": self.camera,
                "labelled_at": self.clock(), "ts": ts, "labels": labels, "zones": zones}
        (folder / f"{safe}.json").write_text(json.dumps(meta))
        return True

    def _event_snapshot(self, event_id: str) -> bytes | None:
        try:
            with CatalogueReader(self.catalogue) as cat:
                rows = [r for r in cat.snapshots_for(event_id) if r.kind == "event"]
            return Path(rows[0].path).read_bytes() if rows else None
        except Exception as exc:  # noqa: BLE001 - no catalogue or file: nothing to save
            log.warning("no snapshot of %s for the data set: %s", event_id, exc)
            return None
