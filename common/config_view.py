"""The validated config as plain, read-only data, for the long-running services.

Validating needs pydantic, and pydantic with our models costs about 12 MB in
every process that imports it: some 60 MB of a Pi Zero's 512 across services
that never need it again after start. So a service validates in a throwaway
child (``python -m common.config --worker-view``) that writes the result as
JSON to a pipe (secrets included: they never touch the disk) and exits, and
keeps a ``ConfigView`` tree with the attribute names of ``common.config.Config``.
Code written against ``Config`` runs on either.

Nothing here imports pydantic; ``common.config`` imports this module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from common.config import Config

ServiceName = Literal["capture", "detect", "record", "notify", "ir", "web"]
SERVICES: tuple[ServiceName, ...] = ("capture", "detect", "record", "notify", "ir", "web")

# How the child marks what plain JSON cannot tell apart from a section.
SECRET = "$secret"
MAPPING = "$mapping"


class ConfigError(Exception):
    """A config that cannot be used; the message is one line naming the key."""


class Secret:
    """A secret string that prints masked, like pydantic's ``SecretStr``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__


class ConfigView:
    """One config section: its fields as read-only attributes. Iterating gives
    (name, value) pairs, as iterating a pydantic model does."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        object.__setattr__(self, "_fields", fields)

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")  # not self._fields: no recursion
        try:
            return fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"config is read-only ({name})")

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self._fields.items())

    def __reduce__(self) -> tuple[type[ConfigView], tuple[dict[str, Any]]]:
        return ConfigView, (self._fields,)  # copy and pickle despite the read-only setattr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigView) and other._fields == self._fields

    __hash__ = None  # type: ignore[assignment]  # like a pydantic model: compared, not hashed

    def __repr__(self) -> str:
        return f"ConfigView({', '.join(f'{k}={v!r}' for k, v in self._fields.items())})"


def _revive(node: Any) -> Any:
    if isinstance(node, list):
        return [_revive(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.keys() == {SECRET}:
        return Secret(node[SECRET])
    if node.keys() == {MAPPING}:
        return {k: _revive(v) for k, v in node[MAPPING].items()}
    return ConfigView({k: _revive(v) for k, v in node.items()})


def view_from_json(text: str) -> Config:
    return cast("Config", _revive(json.loads(text)))


def load_view(path: str | None = None) -> Config:
    """``common.config.load_config(path)``, validated in a child process; raises
    ``ConfigError`` with the child's one line when the config is bad."""
    cmd = [sys.executable, "-m", "common.config", "--worker-view", *([path] if path else [])]
    child = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if child.returncode == 2:
        raise ConfigError(child.stderr.strip())
    if child.returncode != 0:
        raise RuntimeError(f"config validation failed (exit {child.returncode}): "
                           f"{child.stderr.strip()[-500:]}")
    return view_from_json(child.stdout)
