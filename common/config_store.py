"""The one writer of ``config.toml``: changes from the web settings, saved so
that the user's file stays theirs.

- Edits go through tomlkit, so comments, key order, blank lines and the
  untouched values stay as the user wrote them; only the changed keys differ.
- Nothing is written unless the whole result validates (``validate_config``,
  the rules ``pisentry check-config`` applies).
- The file is replaced atomically (a temporary file in the same folder,
  fsynced, then renamed): a power cut leaves the old file or the new one.
- Each saved text also goes to ``state/config_history/`` with who saved it,
  when, and which sections it changed (the file as it was before the first
  save too); the last ``KEEP`` versions stay.

Changes are given as dotted keys (``capture.fps``) with a new value, or None
to remove the key (back to its default).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from common.config import Config, validate_config, worker_view
from common.paths import Home

KEEP = 5


@dataclass(frozen=True)
class Proposal:
    """A config text and what it means: ``config`` when it validates, else
    ``errors`` (dotted key, line)."""

    text: str
    config: Config | None
    errors: list[tuple[str, str]]


@dataclass(frozen=True)
class Version:
    """A saved config: its text is in ``path``."""

    path: Path
    saved_at: float
    by: str
    sections: list[str]


def changed_sections(old: Config, new: Config) -> list[str]:
    """Top-level sections whose effective values differ (secrets compared too)."""
    return [name for name in Config.model_fields
            if _plain(getattr(old, name)) != _plain(getattr(new, name))]


def _plain(section: Any) -> Any:
    return worker_view(section)


class ConfigStore:
    def __init__(self, path: Path, home: Home, keep: int = KEEP) -> None:
        self.path = path
        self.history_dir = home.state_dir / "config_history"
        self.keep = keep

    def read_text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def current(self) -> Proposal:
        return self.check(self.read_text())

    def check(self, text: str) -> Proposal:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            return Proposal(text, None, [("(file)", f"not valid TOML ({exc})")])
        config, errors = validate_config(raw)
        return Proposal(text, config, errors)

    def propose(self, changes: dict[str, Any], base: str | None = None) -> Proposal:
        """The current file (or ``base``) with ``changes`` applied, validated."""
        doc = tomlkit.parse(self.read_text() if base is None else base)
        for key, value in changes.items():
            _set(doc, key.split("."), value)
        return self.check(tomlkit.dumps(doc))

    def save(self, text: str, by: str, sections: list[str]) -> Version:
        """Replace the file with ``text``; its entry in the history."""
        if not self.history() and self.path.exists():
            self._remember(self.read_text(), "the file as it was before", [])
        _write_atomically(self.path, text)
        return self._remember(text, by, sections)

    def history(self) -> list[Version]:
        out = []
        for meta in sorted(self.history_dir.glob("*.json"), reverse=True):
            try:
                data = json.loads(meta.read_text())
                out.append(Version(meta.with_suffix(".toml"), float(data["saved_at"]),
                                   str(data["by"]), list(data["sections"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a half-written entry from a power cut: not a version
        return out

    def _remember(self, old: str, by: str, sections: list[str]) -> Version:
        self.history_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ns = time.time_ns()
        now = ns / 1e9
        path = self.history_dir / f"{ns:020d}.toml"  # names sort by time
        _write_atomically(path, old)
        _write_atomically(path.with_suffix(".json"), json.dumps(
            {"saved_at": now, "by": by, "sections": sections}))
        for stale in self.history()[self.keep:]:
            stale.path.unlink(missing_ok=True)
            stale.path.with_suffix(".json").unlink(missing_ok=True)
        return Version(path, now, by, sections)


def _set(doc: tomlkit.TOMLDocument, keys: list[str], value: Any) -> None:
    node: Any = doc
    for i, key in enumerate(keys[:-1]):
        if key not in node:
            if value is None:
                return  # removing a key whose section is not even there
            # [notify.telegram] rather than an empty [notify] above it
            node[key] = tomlkit.table(is_super_table=i < len(keys) - 2)
        node = node[key]
        if not isinstance(node, (Table, dict)):
            raise TypeError(f"{'.'.join(keys[:i + 1])} is not a section")
    last = keys[-1]
    if value is None:
        if last in node:
            del node[last]
    else:
        node[last] = value


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # it holds secrets
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
