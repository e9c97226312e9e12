"""One home per instance: everything an instance owns lives under ``$PISENTRY_HOME``.

Two instances with different homes never share a socket, a database or a
queue, which is what lets a test start a whole pipeline in a temporary folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> Home:
        raw = os.environ.get("PISENTRY_HOME") or "~/.pisentry"
        return cls(Path(raw).expanduser().resolve())

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def run_dir(self) -> Path:
        """ipc sockets and supervisord's files: readable by this user only."""
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def state_dir(self) -> Path:
        """Small persistent state: arming, the web password hash, keys."""
        return self.root / "state"

    @property
    def recordings_dir(self) -> Path:
        return self.root / "recordings"

    @property
    def catalogue(self) -> Path:
        return self.root / "catalogue.sqlite"

    @property
    def queue_dir(self) -> Path:
        return self.root / "queue"

    @property
    def backup_queue(self) -> Path:
        """notify's backup jobs, one JSON file per clip still to upload; record's
        retention reads it so that it deletes queued clips last."""
        return self.queue_dir / "backup"

    def ensure(self) -> Home:
        """Make the home and its folders, each readable by this user only:
        clips, the catalogue and the logs are nobody else's business on a
        shared machine."""
        for folder in (self.root, self.run_dir, self.state_dir, self.log_dir,
                       self.recordings_dir, self.queue_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask; older homes were 0755
        return self


def write_json_atomically(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON so that a power cut leaves the old
    file or the new one, never half of either. For small state, not per frame."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a full disk leaves no stray temporary file
        raise
