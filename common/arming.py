"""Armed / disarmed / muted: one small state, persisted and shared.

Whoever changes it (Telegram, the web, a schedule, presence) saves it here and
publishes an ``ArmState`` on its own endpoint; every service reads the file at
start and follows ``state/`` afterwards. The file is replaced atomically, so a
power cut leaves either the old state or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass

from common.paths import Home


@dataclass(frozen=True)
class Arming:
    armed: bool = True
    muted_until: float = 0.0
    changed_by: str = ""
    changed_at: float = 0.0

    def muted(self, now: float) -> bool:
        return now < self.muted_until

    def alerts_on(self, now: float) -> bool:
        return self.armed and not self.muted(now)


class ArmingStore:
    def __init__(self, home: Home) -> None:
        self.path = home.state_dir / "arming.json"

    def load(self) -> Arming:
        try:
            raw = json.loads(self.path.read_text())
            return Arming(armed=bool(raw["armed"]), muted_until=float(raw["muted_until"]),
                          changed_by=str(raw.get("changed_by", "")),
                          changed_at=float(raw.get("changed_at", 0.0)))
        except (OSError, ValueError, KeyError, TypeError):
            return Arming()

    def save(self, state: Arming) -> Arming:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".arming.")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return state
