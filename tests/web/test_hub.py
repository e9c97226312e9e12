"""A hub: one web service showing two cameras, each a real capture process
publishing over tcp with CURVE. Only authorised keys get anything."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import zmq

from common.bus import Bus
from common.config import parse_config
from common.paths import Home
from services.web import auth
from tests.support import new_home, pisentry_process
from tests.web.conftest import API_KEY
from tests.web.test_service import free_port

H = {"X-API-Key": API_KEY}
HUB_PASSWORD = "hub password 1234"
pytestmark = pytest.mark.slow


def keypair() -> tuple[str, str]:
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


@pytest.fixture(scope="module")
def hub() -> Iterator[dict]:
    hub_pub, hub_sec = keypair()
    homes: list[Home] = []
    cameras = []
    with ExitStack() as stack:
        for name in ("camA", "camB"):
            pub, sec = keypair()
            ports = {n: free_port() for n in ("frames", "video", "capture")}
            endpoints = {n: f"tcp://127.0.0.1:{p}" for n, p in ports.items()}
            raw = {"general": {"camera": name, "services": ["capture"]},
                   "bus": {"endpoints": endpoints,
                           "curve": {"public_key": pub, "secret_key": sec,
                                     "authorized_clients": [hub_pub]}},
                   "capture": {"width": 320, "height": 240, "fps": 5, "live_width": 320,
                               "live_height": 240, "live_fps": 5}}
            home = new_home()
            homes.append(home)
            stack.enter_context(pisentry_process("capture", home=home, config=raw))
            cameras.append({"name": name, "server_public_key": pub,
                            "endpoints": {"frames": endpoints["frames"],
                                          "capture": endpoints["capture"]}})
        port = free_port()
        raw_hub = {"general": {"camera": "hub", "services": ["web"]},
                   "bus": {"curve": {"public_key": hub_pub, "secret_key": hub_sec}},
                   "web": {"port": port, "api_key": API_KEY, "local_camera": False,
                           "cameras": cameras}}
        home = new_home()
        homes.append(home)
        auth.set_password(home, HUB_PASSWORD)
        proc = stack.enter_context(pisentry_process("web", home=home, config=raw_hub))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (home.root / "web.out").read_text()
            try:
                status = httpx.get(f"{base}/api/status", headers=H, timeout=2).json()
                alive = {c for c, rows in status["services"].items()
                         if any(r["service"] == "capture" and r["alive"] for r in rows)}
                if alive == {"camA", "camB"}:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"cameras not all up: {status}"
            time.sleep(0.3)
        yield {"base": base, "cameras": cameras, "hub_keys": (hub_pub, hub_sec)}
    for h in homes:
        shutil.rmtree(h.root, ignore_errors=True)


def test_two_cameras_in_one_grid(hub: dict) -> None:
    base = hub["base"]
    grid = httpx.get(f"{base}/api/cameras", headers=H).json()
    assert [c["name"] for c in grid] == ["camA", "camB"]
    images = {}
    for name in ("camA", "camB"):
        r = httpx.get(f"{base}/api/snapshot.jpg?camera={name}", headers=H, timeout=5)
        assert r.status_code == 200, name
        images[name] = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert images[name].shape == (240, 320, 3)
    grid = {c["name"]: c for c in httpx.get(f"{base}/api/cameras", headers=H).json()}
    assert grid["camA"]["frames_in"] > 0 and grid["camB"]["frames_in"] > 0
    status = httpx.get(f"{base}/api/status", headers=H).json()
    assert set(status["services"]) == {"camA", "camB"}  # one status for both
    assert status["all_alive"]
    # the live page builds its grid from /api/cameras
    assert httpx.get(f"{base}/", headers=H).status_code == 200


def _receive(camera: dict, client_keys: tuple[str, str], server_key: str,
             seconds: float) -> list:
    raw = {"bus": {"curve": {"public_key": client_keys[0], "secret_key": client_keys[1]}}}
    home = new_home()
    bus = Bus(parse_config(raw), home)
    try:
        sub = bus.subscriber([], [b""], endpoints=[camera["endpoints"]["frames"]],
                             server_key=server_key, latest_only=True)
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not got:
            got += sub.recv(0.2)
        return got
    finally:
        bus.close()
        shutil.rmtree(home.root, ignore_errors=True)


def test_only_the_right_keys_get_anything(hub: dict) -> None:
    cam = hub["cameras"][0]
    got = _receive(cam, hub["hub_keys"], cam["server_public_key"], 5)
    assert got and all(m.header.camera == "camA" for m in got)  # every message says its camera
    # a client key the camera does not know: nothing
    assert _receive(cam, keypair(), cam["server_public_key"], 2) == []
    # the right client key but a wrong server key (an impostor camera's): nothing
    assert _receive(cam, hub["hub_keys"], keypair()[0], 2) == []


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is absent")
def test_hub_grid_in_the_browser(hub: dict) -> None:
    from tests.web.test_browser import ARTIFACTS, chromium

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(f"{hub['base']}/login")
        page.fill("#password", HUB_PASSWORD)
        page.click("#submit")
        page.wait_for_url(f"{hub['base']}/")
        for name in ("camA", "camB"):
            page.wait_for_function(
                f"() => {{ const i = document.querySelector('img[data-camera=\"{name}\"]');"
                " return i && i.naturalWidth === 320; }", timeout=10_000)
        page.wait_for_function("() => document.querySelectorAll('.cam .ok').length === 2",
                               timeout=10_000)  # one status line per camera, all up
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hub-grid.png"))
