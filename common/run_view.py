"""What ``pisentry status`` needs of a config that ``pisentry run`` validated,
kept in ``$PISENTRY_HOME/run`` so that status need not load pydantic.

Validating a config costs status 0.25 s of CPU of its 0.4 (pydantic and our
models), and status is what scripts poll while an instance starts. The
services, the camera's name and the bus endpoints follow from the config
file alone, so once ``pisentry run`` has validated a file, status reads them
from here for as long as that file is unchanged (its path, size, mtime and
CRC); any other file, or a changed one, is validated as before. Nothing
secret is kept: with a tcp:// endpoint (CURVE keys) there is no view, and
status validates.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.config_view import MAPPING, view_from_json
from common.paths import Home

if TYPE_CHECKING:
    from common.config import Config

FILE = "status-view.json"


def _config_file(path: str | None, home: Home) -> Path | None:
    """The file ``load_config(path)`` reads; None for the defaults."""
    if path is not None:
        return Path(path)
    return home.config_file if home.config_file.exists() else None


def _stamp(path: Path | None) -> list[Any] | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
        st = path.stat()
    except OSError:
        return ["unreadable", str(path)]
    return [str(path.resolve()), st.st_size, st.st_mtime_ns, zlib.crc32(data)]


def save(config: Config, home: Home, path: str | None) -> None:
    """After ``config`` was validated from ``path`` (None: the default file)."""
    target = home.run_dir / FILE
    if any(url.startswith("tcp://") for url in config.bus.endpoints.values()):
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return
    bus = config.bus
    record = {"home": str(home.root), "config": _stamp(_config_file(path, home)),
              "view": {"general": {"camera": config.general.camera,
                                   "services": list(config.general.services)},
                       "ir": {"enabled": config.ir.enabled},
                       "bus": {"endpoints": {MAPPING: dict(bus.endpoints)},
                               "frames_hwm": bus.frames_hwm, "video_hwm": bus.video_hwm}}}
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, target)


def load(path: str | None, home: Home) -> Config | None:
    """The view ``save`` kept for this very file, or None: validate it then."""
    try:
        record = json.loads((home.run_dir / FILE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("home") != str(home.root):
        return None
    stamp = _stamp(_config_file(path, home))
    if stamp != record.get("config") or (stamp and stamp[0] == "unreadable"):
        return None
    return view_from_json(json.dumps(record["view"]))
