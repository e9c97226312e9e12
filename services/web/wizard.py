"""Whether the first-run wizard is due: ``state/wizard.json``.

A fresh instance (its login password just generated) is marked pending; the
first login then lands on the wizard instead of the live view. Finishing or
skipping it marks it done; the settings page re-opens it at any time.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.paths import Home, write_json_atomically

STATES = ("pending", "done", "skipped")


def _file(home: Home) -> Path:
    return home.state_dir / "wizard.json"


def state(home: Home) -> str:
    try:
        value = json.loads(_file(home).read_text()).get("state")
    except (OSError, ValueError, AttributeError):
        return "done"  # an instance set up before the wizard existed
    return value if value in STATES else "done"


def set_state(home: Home, value: str) -> None:
    if value not in STATES:
        raise ValueError(f"wizard state is one of {', '.join(STATES)}")
    write_json_atomically(_file(home), {"state": value})


def landing(home: Home) -> str:
    """Where a login goes: the wizard while it is pending, else the live view."""
    return "/wizard" if state(home) == "pending" else "/"
