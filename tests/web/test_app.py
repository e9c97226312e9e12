"""The app on real state: the door (401 everywhere but login, 429 on the
11th failed login, cookie flags), traversal, arming, events, clips, ranges."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from common.catalogue import day_of
from common.messages import Arm, Disarm, Mute, Unmute
from common.paths import Home
from services.web import auth
from tests.web.conftest import API_KEY, PASSWORD, WebEnv, build_env, make_mp4, seed_event

LOGIN_PAGE = "/login"  # the one route the issue allows without a session


def _concrete(path: str) -> str:
    """A route template with its parameters filled in ({clip_id} -> 1 ...)."""
    return re.sub(r"\{[^}]+\}", "1", path)


def _flat(routes: list) -> list:
    """The app's routes with those of its included routers (no prefixes here)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out += _flat(inner.routes) if inner is not None else [route]
    return out


def test_every_route_but_login_needs_a_session_or_key(env: WebEnv) -> None:
    app = env.client.app
    checked = 0
    for route in _flat(app.routes):  # walk the real table: a new route is covered unasked
        if isinstance(route, Mount):
            pytest.fail(f"mounted app {route.path} bypasses the route walk")
        path = _concrete(route.path)
        if isinstance(route, WebSocketRoute):
            with pytest.raises((WebSocketDenialResponse, WebSocketDisconnect)) as err, \
                    env.client.websocket_connect(path):
                pass
            if isinstance(err.value, WebSocketDenialResponse):
                assert err.value.status_code == 401, path
            checked += 1
            continue
        assert isinstance(route, Route)
        for method in sorted(route.methods or {"GET"}):
            if method == "HEAD":
                continue
            r = env.client.request(method, path)
            if route.path == LOGIN_PAGE:
                assert r.status_code != 401 or method == "POST", (method, path)
                continue
            assert r.status_code == 401, (method, path, r.status_code)
            # ... and a wrong key (429 once the client has guessed too often) or a
            # forged cookie does not help
            assert env.client.request(method, path, headers={"X-API-Key": "wrong"}
                                      ).status_code in (401, 429)
            forged = f"{int(time.time()) + 999}.abcd.{'0' * 64}"
            assert env.client.request(method, path, cookies={"pisentry_session": forged}
                                      ).status_code == 401
            checked += 1
    assert checked >= 20  # the table really was walked


def test_pages_send_browsers_to_login(env: WebEnv) -> None:
    r = env.client.get("/events", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 401 and "url=/login" in r.text
    assert env.client.get("/login").status_code == 200


def test_key_and_session_both_open_the_door(env: WebEnv) -> None:
    assert env.client.get("/api/status", headers=env.keyed()).status_code == 200
    env.login()
    assert env.client.get("/api/status").status_code == 200
    assert env.client.get("/").status_code == 200
    assert env.client.get("/static/app.js").status_code == 200


def test_session_cookie_flags_and_logout(env: WebEnv) -> None:
    r = env.client.post("/login", json={"password": PASSWORD})
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    token = env.client.cookies["pisentry_session"]
    assert env.client.post("/logout").status_code == 200
    r = env.client.get("/api/status", cookies={"pisentry_session": token})
    assert r.status_code == 401  # a logged-out cookie replayed is refused


def test_form_login_redirects_and_shows_errors(env: WebEnv) -> None:
    r = env.client.post("/login", data={"username": "admin", "password": "nope"},
                        follow_redirects=False)
    assert r.status_code == 401 and "wrong user name or password" in r.text
    r = env.client.post("/login", data={"username": "admin", "password": PASSWORD},
                        follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_secure_cookie_under_tls(home: Home) -> None:
    e = build_env(home, {"web": {"certfile_path": "/c.pem", "keyfile_path": "/k.pem"}})
    r = e.client.post("/login", json={"password": PASSWORD})
    assert "Secure" in r.headers["set-cookie"]


def test_eleventh_failed_login_in_a_minute_is_429(env: WebEnv) -> None:
    for i in range(10):
        r = env.client.post("/login", json={"password": f"guess{i}"})
        assert r.status_code == 401, i
    r = env.client.post("/login", json={"password": "guess10"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # the right password does not get through either while blocked
    assert env.client.post("/login", json={"password": PASSWORD}).status_code == 429


def test_password_change_ends_sessions(env: WebEnv) -> None:
    env.login()
    assert env.client.get("/api/status").status_code == 200
    time.sleep(0.01)  # a new mtime
    auth.set_password(env.home, "another good password")
    assert env.client.get("/api/status").status_code == 401


@pytest.mark.parametrize("path", [
    "/media/..%2Fsecret.mp4",
    "/media/%2E%2E%2Fsecret.mp4",
    "/media/2026/..%2F..%2Fsecret.mp4",
    "/media/{root}/secret.mp4",  # absolute: Path("/rec") / "/abs" would be "/abs"
    "/media/..%5Csecret.mp4",
    "/media/2026/ev1.mp4%00.jpg",
    "/media/link.mp4",  # a symlink inside pointing outside
    "/media/../secret.mp4",
    "/media/2026",
    "/media/catalogue.sqlite",
])
def test_path_traversal_on_recordings_is_404(env: WebEnv, path: str) -> None:
    seed_event(env)
    # a readable clip just outside the recordings folder: it must never be served
    secret = env.home.root / "secret.mp4"
    secret.write_bytes(b"x" * 100)
    (env.ctx.media_root / "link.mp4").symlink_to(secret)
    r = env.client.get(path.format(root=env.home.root), headers=env.keyed())
    assert r.status_code == 404, (path, r.status_code)
    assert b"x" * 100 not in r.content
    assert env.client.get("/media/2026/ev1.mp4", headers=env.keyed()).status_code == 200


def test_arming_sends_one_command_each_and_waits_for_notify(env: WebEnv) -> None:
    h = env.keyed()
    before = time.time()
    for path, body in (("/api/disarm", None), ("/api/arm", None), ("/api/mute", {"minutes": 30}),
                       ("/api/mute", {"minutes": 0})):
        r = env.client.post(path, json=body, headers=h)
        assert r.status_code == 503 and "notify" in r.json()["detail"]  # nobody answered
    assert [cls for cls, _ in env.sent] == [Disarm, Arm, Mute, Unmute]
    assert all(fields["source"] == "web" for _, fields in env.sent)
    assert before + 1790 < env.sent[2][1]["until"] < time.time() + 1810
    assert env.client.get("/api/arm", headers=h).json()["armed"] is True  # unchanged
    assert not (env.home.state_dir / "arming.json").exists()  # notify's file, not ours
    assert env.client.post("/api/mute", json={"minutes": -1}, headers=h).status_code == 422


def test_events_by_day_label_zone_and_detail(env: WebEnv) -> None:
    start = time.time() - 30
    clip_id, _ = seed_event(env, "ev1", start)
    env.catalogue.upsert_event("ev2", "cam1", start + 1, labels=["car"], zones=["street"])
    h = env.keyed()
    day = day_of(start)
    ids = [e["id"] for e in env.client.get(f"/api/events?day={day}", headers=h).json()["items"]]
    assert ids == ["ev2", "ev1"]
    assert [e["id"] for e in env.client.get("/api/events?label=person", headers=h
                                            ).json()["items"]] == ["ev1"]
    assert [e["id"] for e in env.client.get("/api/events?zone=street", headers=h
                                            ).json()["items"]] == ["ev2"]
    page = env.client.get("/api/events?limit=1&offset=1", headers=h).json()
    assert page["count"] == 1 and page["items"][0]["id"] == "ev1"
    assert env.client.get("/api/events?day=2020-01-01", headers=h).json()["items"] == []
    assert env.client.get("/api/events?day=yesterday", headers=h).status_code == 422
    detail = env.client.get("/api/events/ev1", headers=h).json()
    assert detail["clips"][0]["id"] == clip_id and detail["snapshots"][0]["url"]
    assert env.client.get("/api/events/nope", headers=h).status_code == 404
    hours = env.client.get(f"/api/activity?day={day}", headers=h).json()["hours"]
    assert sum(hours) == 2 and hours[time.localtime(start).tm_hour] >= 1
    snap = env.client.get("/api/events/ev1/snapshot.jpg", headers=h)
    assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
    assert env.client.get("/api/events/ev2/snapshot.jpg", headers=h).status_code == 404


def test_label_an_event_real_or_false(env: WebEnv) -> None:
    seed_event(env)
    h = env.keyed()
    r = env.client.post("/api/events/ev1/label", json={"verdict": "false"}, headers=h)
    assert r.status_code == 200 and r.json()["verdict"] == "false_alarm"
    assert env.catalogue.event("ev1").verdict == "false_alarm"
    r = env.client.post("/api/events/ev1/label", json={"verdict": "real"}, headers=h)
    assert env.catalogue.event("ev1").verdict == "real"
    r = env.client.post("/api/events/ev1/label", json={"verdict": "maybe"}, headers=h)
    assert r.status_code == 422
    r = env.client.post("/api/events/nope/label", json={"verdict": "real"}, headers=h)
    assert r.status_code == 404


def test_clip_mp4_answers_range_requests(env: WebEnv) -> None:
    clip_id, path = seed_event(env)
    h = env.keyed()
    listed = env.client.get("/api/recordings", headers=h).json()["items"]
    assert [c["id"] for c in listed] == [clip_id]
    url = env.client.get(f"/api/recordings/{clip_id}", headers=h).json()["video_url"]
    full = env.client.get(url, headers=h)
    assert full.status_code == 200 and full.content == path.read_bytes()
    assert full.headers["accept-ranges"] == "bytes"
    size = path.stat().st_size
    part = env.client.get(url, headers={**h, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.content == path.read_bytes()[100:200]
    tail = env.client.get(url, headers={**h, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == path.read_bytes()[-50:]
    assert env.client.get("/api/recordings/999/video.mp4", headers=h).status_code == 404


def test_a_clip_says_how_much_of_its_event_nobody_held(env: WebEnv) -> None:
    """``missed`` (the recorder was down as its event began) reaches every
    clip listing: the clips page, one clip, and an event's clips."""
    start = time.time() - 30
    whole, _ = seed_event(env, "ev1", start)
    late = make_mp4(env.ctx.media_root / "2026" / "ev2.mp4")
    env.catalogue.upsert_event("ev2", "cam1", start + 10, end=start + 20)
    late_id = env.catalogue.add_clip(late, "cam1", start + 11.4, "event", "ev2", missed=1.4)
    env.catalogue.finish_clip(late, end=start + 21, duration=9.6, size=late.stat().st_size,
                              frames=96)
    h = env.keyed()
    listed = {c["id"]: c["missed"] for c in
              env.client.get("/api/recordings", headers=h).json()["items"]}
    assert listed == {whole: 0.0, late_id: 1.4}
    assert env.client.get(f"/api/recordings/{late_id}", headers=h).json()["missed"] == 1.4
    assert [c["missed"] for c in env.client.get("/api/events/ev2", headers=h
                                                ).json()["clips"]] == [1.4]


def test_clip_outside_recordings_is_not_served(env: WebEnv) -> None:
    """A catalogue row pointing outside the recordings folder (a bad row, a
    moved folder) must not turn into a file read."""
    outside = env.home.root / "evil.mp4"
    outside.write_bytes(b"\x00" * 64)
    clip_id = env.catalogue.add_clip(outside, "cam1", time.time(), "event", "x")
    r = env.client.get(f"/api/recordings/{clip_id}/video.mp4", headers=env.keyed())
    assert r.status_code == 404


def test_config_is_masked(env: WebEnv) -> None:
    r = env.client.get("/api/config", headers=env.keyed())
    assert r.status_code == 200 and API_KEY not in r.text
    assert r.json()["web"]["api_key"] == "**********"


def test_security_headers(env: WebEnv) -> None:
    r = env.client.get("/api/status", headers=env.keyed())
    assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_snapshot_and_ws_live_from_pushed_frames(env: WebEnv) -> None:
    import numpy as np

    ch = env.ctx.hub.get("cam1")
    # one client context: one event loop for every request, as under uvicorn
    with TestClient(env.client.app, headers=env.keyed()) as client:
        assert client.get("/api/snapshot.jpg?camera=nope").status_code == 404
        ch.demand()  # frames are on (someone just watched)
        ch.push(np.full((480, 640, 3), 90, np.uint8), time.time())
        r = client.get("/api/snapshot.jpg")
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
        with client.websocket_connect("/ws/live?camera=cam1") as ws:
            first = ws.receive_bytes()
            assert first == r.content
            assert ch.viewers == 1
            ws.send_text("ack")
    assert ch.encoded_count == 1  # the snapshot's JPEG was reused by the viewer


def test_status_shows_the_pis_power_flags_from_the_configured_file(home: Home,
                                                                  tmp_path: Path) -> None:
    flags = tmp_path / "get_throttled"
    flags.write_text("50005\n")
    e = build_env(home, {"web": {"api_key": API_KEY}, "health": {"throttled_path": str(flags)}})
    pi = e.client.get("/api/status", headers=e.keyed()).json()["system"]["pi"]
    assert pi["throttled_hex"] == "0x50005"
    assert pi["flags_now"] == ["under-voltage", "throttled"]
    flags.write_text("50000\n")
    pi = e.client.get("/api/status", headers=e.keyed()).json()["system"]["pi"]
    assert pi["flags_now"] == [] and pi["flags_since_boot"] == ["under-voltage", "throttled"]


def test_status_shows_each_services_writes_a_day_and_the_card_life(env: WebEnv) -> None:
    from common.messages import Heartbeat

    now = time.time()
    for service, written, clips in (("record", 3_000_000, 2_000_000), ("detect", 50_000, 0)):
        env.ctx.board.heartbeat(Heartbeat("cam1", 0, now, service, 1, now - 3600, "ok",
                                          {"write_bytes": written, "clip_bytes": clips}), now)
    w = env.client.get("/api/status", headers=env.keyed()).json()["system"]["writes"]
    # an hour's writes times 24, the clips apart
    assert w["services_mb_day"] == {"detect": 1.2, "record": 24.0}
    assert w["total_mb_day"] == 25.2 and w["clips_mb_day"] == 48.0
    assert w["clips_on_card"] is True and w["card_mb_day"] == 73.2
    assert w["card_life_years"] > 1 and w["storage"]["path"] == str(env.ctx.media_root)
