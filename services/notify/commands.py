"""Chat commands (/status, /arm, /mute 30, /rotate 30 20...), parsed into
actions. Pure logic.

The same parser serves Telegram and any other text channel; the service
carries the actions out (it owns the bus and the arming store).
"""

from __future__ import annotations

from dataclasses import dataclass

HELP = (
    "/status - armed, muted, services, backups\n"
    "/arm, /disarm - alerts on or off\n"
    "/mute [minutes] - silence alerts (default 60 min), /unmute\n"
    "/snapshot - a picture now\n"
    "/clip - the latest clip\n"
    "/rotate PAN TILT - point the camera (degrees)\n"
    "/selftest - run the self-test now (a passer-by through every stage)"
)

DEFAULT_MUTE_MINUTES = 60.0
MAX_MUTE_MINUTES = 7 * 24 * 60.0
ROTATE_RANGE = 180


@dataclass(frozen=True)
class Incoming:
    """Something a user did, handed from a link's thread to the service thread."""

    kind: str  # "command" | "label" (Telegram) | "mqtt" (the arm switch)
    chat_id: int
    text: str  # the command text, the button's callback data, or arm/disarm
    query_id: str = ""


@dataclass(frozen=True)
class ChatCommand:
    """What the user typed; ``minutes`` is for mute, ``pan`` and ``tilt`` for
    rotate (the parser fills in every field a command uses)."""

    name: str  # status | arm | disarm | mute | unmute | snapshot | clip | rotate | selftest
    # | help
    minutes: float = 0.0
    pan: int = 0
    tilt: int = 0


class CommandError(ValueError):
    """A command the user typed wrong; the message is the reply."""


def parse_command(text: str) -> ChatCommand | None:
    """``/mute 30`` -> ChatCommand("mute", minutes=30.0); None for plain text.
    Raises ``CommandError`` with a reply for a bad command."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return None
    name = words[0][1:].split("@", 1)[0].lower()  # "/status@MyBot" in group chats
    rest = words[1:]
    if name in ("status", "arm", "disarm", "unmute", "snapshot", "clip", "help", "start",
                "selftest"):
        return ChatCommand("help" if name == "start" else name)
    if name == "mute":
        minutes = DEFAULT_MUTE_MINUTES
        if rest:
            try:
                minutes = float(rest[0])
            except ValueError:
                raise CommandError(f"/mute takes minutes, not {rest[0]!r}") from None
            if not 0 < minutes <= MAX_MUTE_MINUTES:
                raise CommandError(f"/mute minutes must be between 0 and {MAX_MUTE_MINUTES:.0f}")
        return ChatCommand("mute", minutes=minutes)
    if name == "rotate":
        if len(rest) != 2:
            raise CommandError("usage: /rotate PAN TILT (degrees, e.g. /rotate 30 20)")
        try:
            pan, tilt = int(rest[0]), int(rest[1])
        except ValueError:
            raise CommandError("/rotate PAN TILT takes whole degrees") from None
        if not (-ROTATE_RANGE <= pan <= ROTATE_RANGE and -ROTATE_RANGE <= tilt <= ROTATE_RANGE):
            raise CommandError(f"/rotate angles must be within ±{ROTATE_RANGE}")
        return ChatCommand("rotate", pan=pan, tilt=tilt)
    raise CommandError(f"unknown command /{name}; try /help")


LABEL_PREFIX = "label"
VERDICTS = {"real": "real", "false": "false_alarm"}


def label_data(event_id: str, verdict_key: str) -> str:
    """Callback data of a label button (Telegram allows 64 bytes)."""
    return f"{LABEL_PREFIX}:{verdict_key}:{event_id}"[:64]


def parse_label(data: str) -> tuple[str, str] | None:
    """(event_id, catalogue verdict) from a button's callback data."""
    parts = data.split(":", 2)
    if len(parts) != 3 or parts[0] != LABEL_PREFIX or parts[1] not in VERDICTS:
        return None
    return parts[2], VERDICTS[parts[1]]
