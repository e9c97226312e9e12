"""Fixtures for the web tests: the real app on real state (catalogue, files,
arming file), driven in-process; no bus at this level: the commands the app
would send are collected in ``sent`` (tests/web/test_service.py runs web and
notify on a real bus)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from common.arming import apply
from common.catalogue import CatalogueWriter
from common.config import Config, parse_config
from common.messages import Label
from common.paths import Home
from services.web import auth
from services.web.app import create_app
from services.web.context import WebContext
from services.web.health import HealthBoard
from services.web.live import LiveHub

API_KEY = "test-api-key-0123456789abcdef01234"
PASSWORD = "correct horse battery"


def make_mp4(path: Path, seconds: float = 2.0, fps: int = 10) -> Path:
    """A real, seekable H.264 MP4 (a moving bar) made with PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.zeros((120, 160, 3), np.uint8)
            img[:, (i * 7) % 160:(i * 7) % 160 + 10] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@dataclass
class WebEnv:
    home: Home
    config: Config
    ctx: WebContext
    client: TestClient
    catalogue: CatalogueWriter
    sent: list[tuple[type, dict[str, Any]]] = field(default_factory=list)

    def login(self, client: TestClient | None = None) -> TestClient:
        c = client or self.client
        r = c.post("/login", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        return c

    def keyed(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY}


def build_env(home: Home, raw: dict | None = None, arming_owner: bool = False) -> WebEnv:
    """The app on real state. ``arming_owner``: arming commands are answered
    in-process by ``common.arming.apply``, the rule set notify runs (the fuzz
    needs answers; the bus round trip itself is tested in test_service.py)."""
    raw = raw or {"web": {"api_key": API_KEY}}
    config = parse_config(raw)
    auth.set_password(home, PASSWORD)
    sent: list[tuple[type, dict[str, Any]]] = []

    def send(cls: type, **fields: Any) -> None:
        sent.append((cls, fields))
        if cls is Label:  # record's part: the test holds the catalogue's writer
            cat.set_label(fields["event_id"], fields["verdict"])
        elif arming_owner:
            now = time.time()
            ctx.arming = apply(ctx.arming, cls(camera="cam1", seq=0, ts=now, **fields), now)

    ctx = WebContext(config, home, LiveHub(["cam1"]), HealthBoard({"cam1": ["capture"]}),
                     send=send, arming_reply_seconds=0.2)
    cat = CatalogueWriter(home.catalogue)
    return WebEnv(home, config, ctx, TestClient(create_app(ctx)), cat, sent)


@pytest.fixture
def env(home: Home) -> Iterator[WebEnv]:
    e = build_env(home)
    yield e
    e.client.close()
    e.catalogue.close()


def seed_event(env: WebEnv, event_id: str = "ev1", start: float | None = None) -> tuple[int, Path]:
    """One finished event with a snapshot and a real clip, as record writes them."""
    start = start or time.time() - 60
    root = env.ctx.media_root
    clip = make_mp4(root / "2026" / f"{event_id}.mp4")
    snap = root / "2026" / f"{event_id}.jpg"
    import cv2
    cv2.imwrite(str(snap), np.full((120, 160, 3), 128, np.uint8))
    env.catalogue.upsert_event(event_id, "cam1", start, end=start + 5, labels=["person"],
                               zones=["door"], boxes=[[0.1, 0.1, 0.2, 0.4]])
    clip_id = env.catalogue.add_clip(clip, "cam1", start - 1, "event", event_id)
    env.catalogue.finish_clip(clip, end=start + 6, duration=2.0, size=clip.stat().st_size,
                              frames=20)
    env.catalogue.add_snapshot(snap, "cam1", start + 1, "event", event_id, 160, 120)
    return clip_id, clip
