"""The mask editor's and motion tuner's API on the real app: a mask image
becomes polygons that detect's own rasteriser turns back into the same mask,
tuning values are checked by the config's bounds and sent on, bad input gets
an error that names the problem."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import pytest

from common.messages import Heartbeat, MotionOverlay, Overlay, Tune
from common.paths import Home
from services.detect.regions import polygon_mask
from tests.web.conftest import API_KEY, WebEnv, build_env

H = {"X-API-Key": API_KEY}


@pytest.fixture
def env(home: Home) -> Iterator[WebEnv]:
    e = build_env(home, {"web": {"api_key": API_KEY},
                         "detect": {"masks": [[[0, 0], [0.2, 0], [0.2, 0.2]]],
                                    "zones": [{"name": "door", "required": True,
                                               "polygon": [[0.5, 0.5], [0.6, 0.5],
                                                           [0.6, 0.9]]}],
                                    "min_pixel_delta_trigger": 30}})
    yield e
    e.client.close()
    e.catalogue.close()


def test_regions_are_the_saved_masks_and_zones(env: WebEnv) -> None:
    got = env.client.get("/api/motion/regions", headers=H).json()
    assert got["masks"] == [[[0, 0], [0.2, 0], [0.2, 0.2]]]
    (zone,) = got["zones"]
    assert (zone["name"], zone["required"], zone["polygon"]) == \
        ("door", True, [[0.5, 0.5], [0.6, 0.5], [0.6, 0.9]])
    assert got["mask_image"] == ""


def test_mask_image_becomes_polygons_that_rasterise_back_to_it(env: WebEnv) -> None:
    w, h = 320, 240
    img = np.full((h, w), 255, np.uint8)
    cv2.rectangle(img, (10, 20), (120, 200), 0, -1)  # a hedge
    cv2.circle(img, (240, 80), 40, 0, -1)  # a tree crown
    img[230, 300] = 0  # a speck: dropped
    ok, png = cv2.imencode(".png", img)
    assert ok
    r = env.client.post("/api/motion/mask-image", content=png.tobytes(),
                        headers={**H, "Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    polygons = r.json()["masks"]
    assert len(polygons) == 2 and all(3 <= len(p) <= 64 for p in polygons)
    drawn = np.zeros((h, w), np.uint8)
    for polygon in polygons:
        drawn |= polygon_mask(polygon, (w, h))
    black = img < 128
    black[230, 300] = False
    union = np.logical_or(drawn > 0, black).sum()
    agree = np.logical_and(drawn > 0, black).sum() / union
    assert agree > 0.97, agree


@pytest.mark.parametrize("body", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50])
def test_mask_image_that_is_no_image_is_refused_by_name(env: WebEnv, body: bytes) -> None:
    r = env.client.post("/api/motion/mask-image", content=body,
                        headers={**H, "Content-Type": "image/png"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("mask image: not an image")


def test_tuning_is_sent_on_and_bounded_like_the_config(env: WebEnv) -> None:
    sent: list[Any] = []
    env.ctx.send = lambda cls, **fields: sent.append(cls(camera="cam1", seq=0, ts=0.0,
                                                         **fields))
    got = env.client.get("/api/motion/tuning", headers=H).json()
    assert got["live"] == got["saved"] == {"min_pixel_delta_trigger": 30,
                                           "min_trigger_area": 0.002, "frames_to_start": 2}
    assert got["limits"]["min_pixel_delta_trigger"] == [1, 255]
    assert got["descriptions"]["frames_to_start"].startswith("Consecutive motion frames")

    new = {"min_pixel_delta_trigger": 60, "min_trigger_area": 0.01, "frames_to_start": 4}
    r = env.client.post("/api/motion/tuning", json=new, headers=H)
    assert r.status_code == 200, r.text
    assert r.json()["live"] == new and r.json()["saved"]["min_pixel_delta_trigger"] == 30
    day, night, overlay = sent  # detect said nothing of its profile: it is day
    assert (day.profile, day.threshold, day.min_area, day.frames_to_start) == ("day", 60,
                                                                                0.01, 4)
    assert (night.profile, night.threshold) == ("night", 30)  # the night's own, untouched
    assert isinstance(overlay, Overlay) and overlay.seconds == 0  # nobody watches

    r = env.client.post("/api/motion/tuning", headers=H,
                        json={**new, "frames_to_start": 0})
    assert r.status_code == 422
    assert "frames_to_start" in r.text and "greater than or equal to 1" in r.text
    assert len(sent) == 3  # nothing sent for a bad value


def test_an_overlay_that_does_not_add_up_is_dropped(env: WebEnv) -> None:
    tuner = env.ctx.tuner
    good = MotionOverlay("cam1", 1, 1.0, 16, 8, [[0.1, 0.1, 0.2, 0.2]], 0.01, True, False,
                         25, 0.002, 2)
    tuner.push(good, b"\xff" * 16)
    assert tuner.overlays_in == 1
    for header, bits in [(good, b"\xff" * 15),  # bits for another size
                         (replace(good, width=2**31), b"\xff" * 16),
                         (replace(good, area=float("nan")), b"\xff" * 16),
                         (replace(good, boxes=[[0.1, "x", 0.2, 0.2]]), b"\xff" * 16),
                         (replace(good, boxes=[7]), b"\xff" * 16),
                         (replace(good, min_trigger_area=float("inf")), b"\xff" * 16)]:
        tuner.push(header, bits)
    assert (tuner.overlays_in, tuner.bad_overlays) == (1, 6)


def _detect_says(env: WebEnv, profile: str, why: str) -> None:
    now = env.ctx.clock()
    env.ctx.board.heartbeat(Heartbeat("cam1", 0, now, "detect", 1, now - 60, "ok", {},
                                      profile=profile, profile_since=now - 30,
                                      profile_why=why), now)


def test_status_shows_the_profile_and_the_tuner_tunes_the_night_at_night(home: Home) -> None:
    env = build_env(home, {"web": {"api_key": API_KEY},
                           "detect": {"min_pixel_delta_trigger": 30,
                                      "night": {"min_pixel_delta_trigger": 12}}})
    sent: list[Any] = []
    env.ctx.send = lambda cls, **fields: sent.append(cls(camera="cam1", seq=0, ts=0.0,
                                                         **fields))
    try:
        _detect_says(env, "night", "IR on")
        rows = env.client.get("/api/status", headers=H).json()["services"]["cam1"]
        profile = next(r for r in rows if r["service"] == "detect")["profile"]
        assert profile["name"] == "night" and profile["why"] == "IR on"
        assert profile["text"].startswith("night profile since ") and \
            profile["text"].endswith(" (IR on)")

        got = env.client.get("/api/motion/tuning", headers=H).json()
        assert got["profile"] == "night" and got["live"]["min_pixel_delta_trigger"] == 12
        assert got["saved"]["min_pixel_delta_trigger"] == 12
        assert got["keys"]["min_pixel_delta_trigger"] == "detect.night.min_pixel_delta_trigger"
        new = {"min_pixel_delta_trigger": 9, "min_trigger_area": 0.002, "frames_to_start": 2}
        assert env.client.post("/api/motion/tuning", json=new, headers=H).status_code == 200
        tunes = {t.profile: t.threshold for t in sent if isinstance(t, Tune)}
        assert tunes == {"day": 30, "night": 9}  # the day's stay the day's

        _detect_says(env, "day", "IR off")
        got = env.client.get("/api/motion/tuning", headers=H).json()
        assert got["profile"] == "day" and got["live"]["min_pixel_delta_trigger"] == 30
        assert got["keys"]["min_pixel_delta_trigger"] == "detect.min_pixel_delta_trigger"
    finally:
        env.client.close()
        env.catalogue.close()
