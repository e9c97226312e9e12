"""The chat: replies to Telegram commands (/status, /arm, /mute 30, /rotate,
/snapshot, /clip...) and to the label buttons under an alert.

Parsing is ``commands``; this module carries the commands out through what
the service offers (``ChatHost``): arm-state changes go back through the
service's one ``change_arming``, bus messages out on its endpoint. Runs on the
service's thread only.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from common.arming import Arming, ArmingCommand
from common.bus import Bus, Subscriber
from common.catalogue import CatalogueReader
from common.messages import Arm, Disarm, Label, LiveFrame, Mute, Rotate, Unmute
from common.paths import Home
from services.notify.commands import (
    HELP,
    ChatCommand,
    CommandError,
    Incoming,
    parse_command,
    parse_label,
)
from services.notify.dataset import DataSet
from services.notify.fanout import Fanout

log = logging.getLogger(__name__)

SNAPSHOT_WAIT = 5.0


class ChatHost(Protocol):
    """What the chat needs of the notify service."""

    camera: str
    arming: Arming

    def own_arming(self, cls: type[ArmingCommand], by: str, now: float, **fields: float
                   ) -> None: ...

    def send(self, cls: type, **fields: Any) -> None: ...

    def status_text(self, now: float) -> str: ...

    def event_facts(self, event_id: str) -> tuple[float, list[str], list[str]]: ...

    def start_selftest(self, by: str, now: float) -> bool: ...


class Chat:
    def __init__(self, host: ChatHost, telegram: Any, bus: Bus, home: Home, fanout: Fanout,
                 dataset: DataSet) -> None:
        self.host = host
        self.telegram = telegram
        self.bus = bus
        self.catalogue = home.catalogue
        self.fanout = fanout
        self.dataset = dataset
        self.snapshot_waiters: list[tuple[int, float]] = []
        self._live: Subscriber | None = None  # open only while a /snapshot waits

    def on_command(self, item: Incoming, now: float) -> None:
        try:
            command = parse_command(item.text)
        except CommandError as exc:
            self.telegram.send_text([item.chat_id], str(exc))
            return
        if command is not None:
            self.run(command, item.chat_id, now)

    def run(self, cmd: ChatCommand, chat: int, now: float) -> None:
        host = self.host
        reply: str | None = None
        by = f"telegram:{chat}"
        if cmd.name == "help":
            reply = HELP
        elif cmd.name == "status":
            reply = host.status_text(now)
        elif cmd.name in ("arm", "disarm"):
            host.own_arming(Arm if cmd.name == "arm" else Disarm, by, now)
            reply = "Armed: alerts are on" if host.arming.armed else "Disarmed: alerts are off"
        elif cmd.name == "mute":
            host.own_arming(Mute, by, now, until=now + cmd.minutes * 60)
            reply = f"Muted for {cmd.minutes:g} min"
        elif cmd.name == "unmute":
            host.own_arming(Unmute, by, now)
            reply = "Unmuted"
        elif cmd.name == "rotate":
            host.send(Rotate, angles={"pan": cmd.pan, "tilt": cmd.tilt})
            reply = f"Rotating to pan {cmd.pan}, tilt {cmd.tilt}"
        elif cmd.name == "snapshot":
            self.snapshot_waiters.append((chat, now + SNAPSHOT_WAIT))
            if self._live is None:
                self._live = self.bus.subscriber(["frames"], [LiveFrame.TOPIC],
                                                 latest_only=True)
        elif cmd.name == "clip":
            self.send_latest_clip(chat)
        elif cmd.name == "selftest":
            reply = ("Self-test started: a passer-by through every stage; the report follows"
                     if host.start_selftest(by, now) else "A self-test is already running")
        if reply:
            self.telegram.send_text([chat], reply)

    def tick(self, now: float) -> None:
        if self.snapshot_waiters:
            self._serve_snapshot(now)

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
            self._live = None

    def _serve_snapshot(self, now: float) -> None:
        """Answer waiting /snapshot requests with the newest live frame."""
        frames = self._live.read() if self._live is not None else []
        if not frames and any(deadline > now for _, deadline in self.snapshot_waiters):
            return
        chats = sorted({chat for chat, _ in self.snapshot_waiters})
        self.snapshot_waiters.clear()
        self.close()  # raw frames cost bandwidth: listen only while asked
        if not frames:
            self.telegram.send_text(chats, "No picture: no live frames (is capture running?)")
            return
        from services.notify.picture import frame_to_jpeg

        frame = frames[-1]
        try:
            jpeg = frame_to_jpeg(frame.header, frame.payload[0])
        except ValueError as exc:
            self.telegram.send_text(chats, f"No picture: {exc}")
            return
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frame.header.ts))
        self.telegram.send_photo(chats, jpeg, f"{frame.header.camera} at {when}")

    def send_latest_clip(self, chat: int) -> None:
        try:
            with CatalogueReader(self.catalogue) as cat:
                clip = cat.latest_clip(self.host.camera)
        except Exception as exc:  # noqa: BLE001 - the catalogue is optional here
            log.warning("catalogue: %s", exc)
            clip = None
        if clip is None:
            self.telegram.send_text([chat], "No clip recorded yet")
            return
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(clip.start))
        self.fanout.clip([chat], clip.path, f"Latest clip, {when} ({clip.duration:.0f} s)")

    def on_label(self, item: Incoming) -> None:
        """A label button: record writes the verdict into its catalogue (we
        ask with ``Label``); the data set keeps the picture."""
        parsed = parse_label(item.text)
        if parsed is None:
            self.telegram.answer(item.query_id, "Unknown button")
            return
        event_id, verdict = parsed
        self.host.send(Label, event_id=event_id, verdict=verdict,
                       source=f"telegram:{item.chat_id}")
        known = False
        try:
            with CatalogueReader(self.catalogue) as cat:
                known = cat.event(event_id) is not None
        except Exception as exc:  # noqa: BLE001 - the catalogue is optional here
            log.warning("catalogue: cannot look up %s: %s", event_id, exc)
        saved = self.dataset.save(event_id, verdict, *self.host.event_facts(event_id))
        text = "Saved as " + ("a real alarm" if verdict == "real" else "a false alarm")
        if not (known or saved):
            text = "That event is no longer known"
        self.telegram.answer(item.query_id, text)
