"""Telegram against a local Bot API server, with the real client and the
service on real bus endpoints."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.arming import ArmingStore
from common.catalogue import CatalogueWriter
from common.logs import setup_logging
from common.messages import ArmState, Label, LiveFrame, Motion, Notice, Recording, Rotate, Snapshot
from tests.notify.conftest import CHAT, TOKEN, Harness, jpeg, telegram_section, wait_until
from tests.notify.fake_telegram import FakeTelegram


def start_event(h: Harness, event: str, photo: bytes, labels: list[str] | None = None
                ) -> float:
    ts = time.time()
    h.detect.publish(Motion, ts=ts, event_id=event, phase="start", boxes=[[0.1, 0.2, 0.3, 0.4]],
                     labels=labels or ["person"], zones=["driveway"])
    h.detect.publish(Snapshot, [photo], ts=ts, event_id=event, kind="event", width=320,
                     height=240)
    return ts


def test_alert_photo_at_once_then_clip(telegram: FakeTelegram,
                                       harness_factory: Callable[..., Harness],
                                       tmp_path: Path) -> None:
    h = harness_factory({"telegram": telegram_section(telegram)})
    photo = jpeg(1)
    start_event(h, "ev1", photo)
    call = telegram.wait_for("sendPhoto")[0]
    assert call.files["photo"][2] == photo and call.fields["chat_id"] == str(CHAT)
    caption = call.fields["caption"]
    assert "cam1" in caption and "person" in caption and "driveway" in caption
    buttons = json.loads(call.fields["reply_markup"])["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == ["label:real:ev1", "label:false:ev1"]
    clip = tmp_path / "ev1.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2_000_000))  # > aiohttp's 1 MiB
    h.record.publish(Recording, ts=time.time(), phase="finished", path=str(clip),
                     start=time.time() - 10, end=time.time(), duration=10.0,
                     size=clip.stat().st_size, event_id="ev1")
    video = telegram.wait_for("sendVideo")[0]
    assert video.files["video"][2] == clip.read_bytes()
    # A clip of an event that was not alerted is not sent.
    h.record.publish(Recording, ts=time.time(), phase="finished", path=str(clip),
                     start=time.time(), event_id="never-alerted")
    time.sleep(0.3)
    assert len(telegram.of("sendVideo")) == 1


def test_commands_drive_arming_the_bus_and_clips(telegram: FakeTelegram,
                                                 harness_factory: Callable[..., Harness],
                                                 tmp_path: Path) -> None:
    h = harness_factory({"telegram": telegram_section(telegram)})
    telegram.push_message(CHAT, "/disarm")
    state = h.wait_output(lambda m: isinstance(m.header, ArmState) and not m.header.armed)
    assert state.header.changed_by == f"telegram:{CHAT}"
    assert ArmingStore(h.home).load().armed is False
    # Disarmed: an event sends nothing.
    start_event(h, "quiet", jpeg(2))
    time.sleep(0.3)
    assert telegram.of("sendPhoto") == []
    telegram.push_message(CHAT, "/arm")
    h.wait_output(lambda m: isinstance(m.header, ArmState) and m.header.armed)
    telegram.push_message(CHAT, "/mute 5")
    muted = h.wait_output(lambda m: isinstance(m.header, ArmState) and m.header.muted_until > 0)
    assert 290 < muted.header.muted_until - time.time() <= 300
    telegram.push_message(CHAT, "/unmute")
    h.wait_output(lambda m: isinstance(m.header, ArmState) and m.header.muted_until == 0
                  and m.header.changed_by.startswith("telegram"))
    telegram.push_message(CHAT, "/rotate 30 20")
    rotate = h.wait_output(lambda m: isinstance(m.header, Rotate))
    assert rotate.header.angles == {"pan": 30, "tilt": 20}
    telegram.push_message(CHAT, "/status")
    telegram.push_message(CHAT, "/rotate 30")
    texts = [c.fields["text"] for c in telegram.wait_for("sendMessage", 7)]
    assert any("ARMED" in t and "detect: ok, up" in t for t in texts), texts
    assert any(t.startswith("usage: /rotate") for t in texts)
    # /snapshot takes the newest live frame and sends it as a photo.
    telegram.push_message(CHAT, "/snapshot")
    picture = cv2.resize(cv2.imdecode(np.frombuffer(jpeg(3), np.uint8), cv2.IMREAD_COLOR),
                         (640, 480))
    picture = cv2.GaussianBlur(picture, (15, 15), 5)

    def photo_arrived() -> bool:
        h.frames.publish(LiveFrame, [picture.copy()], ts=time.time(), width=640, height=480,
                         format="bgr24")
        time.sleep(0.05)
        return bool(telegram.of("sendPhoto"))
    wait_until(photo_arrived, 10, "the /snapshot photo")
    got = cv2.imdecode(np.frombuffer(telegram.of("sendPhoto")[0].files["photo"][2], np.uint8),
                       cv2.IMREAD_COLOR)
    assert got.shape == picture.shape
    assert np.abs(got.astype(int) - picture.astype(int)).mean() < 3  # the same picture
    wait_until(lambda: h.svc.chat._live is None, 2, "the live subscription to close")
    # /clip sends the newest finished clip from the catalogue.
    clip = tmp_path / "latest.mp4"
    clip.write_bytes(b"latest-clip")
    with CatalogueWriter(h.home.catalogue) as cat:
        cat.add_clip(clip, "cam1", time.time() - 5, "event", "e9", state="open")
        cat.finish_clip(clip, end=time.time(), duration=5, size=11, frames=50)
    telegram.push_message(CHAT, "/clip")
    assert telegram.wait_for("sendVideo")[0].files["video"][2] == b"latest-clip"


def test_foreign_chat_is_ignored(telegram: FakeTelegram,
                                 harness_factory: Callable[..., Harness],
                                 caplog: pytest.LogCaptureFixture) -> None:
    h = harness_factory({"telegram": telegram_section(telegram)})
    with caplog.at_level(logging.WARNING):
        telegram.push_message(999, "/disarm")
        telegram.push_button(999, "label:false:ev1")
        wait_until(lambda: h.svc.telegram.counters["tg_ignored_chats"] == 2, 5, "ignoring")
    time.sleep(0.2)
    assert ArmingStore(h.home).load().armed is True
    assert telegram.of("sendMessage") == [] and telegram.of("answerCallbackQuery") == []
    assert "chat 999" in caplog.text


def test_label_buttons_store_the_dataset(telegram: FakeTelegram,
                                         harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory({"telegram": telegram_section(telegram)})
    photo = jpeg(7)
    kept = h.home.root / "ev7-event.jpg"  # where the recorder keeps the event snapshot
    kept.write_bytes(photo)
    with CatalogueWriter(h.home.catalogue) as cat:
        cat.upsert_event("ev7", "cam1", time.time(), labels=["person"])
        cat.add_snapshot(kept, "cam1", time.time(), "event", "ev7", 320, 240, len(photo))
    start_event(h, "ev7", photo)
    telegram.wait_for("sendPhoto")
    telegram.push_button(CHAT, "label:false:ev7")
    answer = telegram.wait_for("answerCallbackQuery")[0]
    assert "false alarm" in answer.fields["text"]
    asked = h.wait_output(lambda m: isinstance(m.header, Label)).header  # record writes it
    assert (asked.event_id, asked.verdict, asked.source) == ("ev7", "false_alarm",
                                                              f"telegram:{CHAT}")
    saved = h.home.root / "dataset" / "false_alarm" / "ev7.jpg"
    assert saved.read_bytes() == photo
    meta = json.loads(saved.with_suffix(".json").read_text())
    assert meta["verdict"] == "false_alarm" and meta["labels"] == ["person"]
    telegram.push_button(CHAT, "label:real:ev7")  # changed their mind
    telegram.wait_for("answerCallbackQuery", 2)
    assert (h.home.root / "dataset" / "real" / "ev7.jpg").exists() and not saved.exists()


def test_429_and_500_are_retried_with_back_off(telegram: FakeTelegram,
                                               harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory({"telegram": telegram_section(telegram)})
    telegram.fail["sendPhoto"] = [429, 500, 500]
    telegram.retry_after = 1
    start_event(h, "ev2", jpeg(4))
    calls = telegram.wait_for("sendPhoto", 4, timeout=15)
    gaps = [b.t - a.t for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.95  # waited the retry_after the server asked for
    assert 0.4 <= gaps[1] and 0.9 <= gaps[2]  # then doubling back-off on 5xx
    wait_until(lambda: h.svc.telegram.counters["tg_sent"] == 1, 5, "the delivery")
    assert h.svc.telegram.counters["tg_retries"] == 3


def test_token_never_reaches_the_logs(telegram: FakeTelegram,
                                      harness_factory: Callable[..., Harness],
                                      caplog: pytest.LogCaptureFixture) -> None:
    h = harness_factory({"telegram": telegram_section(telegram)})
    # The service's own logging set-up (it quiets httpx, which logs URLs with the
    # token), then capture everything at DEBUG without its redaction filter.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging(h.config, level="DEBUG")
    root.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG):
            telegram.fail["sendPhoto"] = [500, 400]
            telegram.push_message(CHAT, "/status")
            start_event(h, "ev3", jpeg(5))
            telegram.wait_for("sendPhoto", 2)
            telegram.wait_for("sendMessage")
            time.sleep(0.3)
    finally:
        root.handlers[:], root.level = saved
    assert "refused" in caplog.text and "failed" in caplog.text  # errors were logged ...
    assert "sendPhoto" in caplog.text  # ... and the client's debug output too ...
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text  # ... cleanly


def test_alert_without_a_snapshot_goes_out_as_text(telegram: FakeTelegram,
                                                   harness_factory: Callable[..., Harness]
                                                   ) -> None:
    h = harness_factory({"telegram": telegram_section(telegram)})
    h.detect.publish(Motion, ts=time.time(), event_id="blind", phase="start",
                     labels=["person"])
    sent = telegram.wait_for("sendMessage", timeout=5)[0]
    assert "Motion on cam1" in sent.fields["text"] and "(no picture)" in sent.fields["text"]
    buttons = json.loads(sent.fields["reply_markup"])["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == ["label:real:blind", "label:false:blind"]
    assert telegram.of("sendPhoto") == []


def test_a_notice_from_record_reaches_the_chat(telegram: FakeTelegram,
                                               harness_factory: Callable[..., Harness]) -> None:
    """The recorder had to delete clips not yet backed up: the owner is told."""
    h = harness_factory({"telegram": telegram_section(telegram)})
    h.record.publish(Notice, ts=time.time(), kind="storage",
                     text="disk full: deleted 2 clips not yet backed up", source="record")
    sent = telegram.wait_for("sendMessage")
    assert "deleted 2 clips not yet backed up" in sent[0].fields["text"]
    assert sent[0].fields["chat_id"] == str(CHAT)


def test_after_a_restart_an_event_alerts_once_and_a_missed_one_still_alerts(
        telegram: FakeTelegram, harness_factory: Callable[..., Harness]) -> None:
    """notify killed mid-event comes back: the alerted event is not alerted
    again, and an event that began while it was down is alerted late."""
    before = harness_factory({"telegram": telegram_section(telegram)})
    start_event(before, "ev1", jpeg(1))
    telegram.wait_for("sendPhoto")
    before.stop()
    after = harness_factory({"telegram": telegram_section(telegram)})
    after.detect.publish(Motion, ts=time.time(), event_id="ev1", phase="update")
    after.detect.publish(Motion, ts=time.time(), event_id="ev1", phase="end")
    after.detect.publish(Motion, ts=time.time(), event_id="ev2", phase="end",
                         labels=["person"])
    late = telegram.wait_for("sendMessage", timeout=10)[0]  # ev2, in words: no snapshot
    assert "person" in late.fields["text"]
    time.sleep(0.5)
    assert len(telegram.of("sendPhoto")) == 1 and len(telegram.of("sendMessage")) == 1
