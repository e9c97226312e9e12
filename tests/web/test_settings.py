"""The settings API in-process on real state (no supervisord here: saving
saves, and says nothing was restarted; tests/web/test_settings_browser.py
runs it under ``pisentry run``): the form read off the config models, check
and save, secrets write-only, the password, the wizard state, the test
buttons against real local servers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from common.paths import Home
from services.web import wizard
from tests.notify.fake_telegram import FakeTelegram
from tests.notify.peers import SSHD, SshServer, have
from tests.web.conftest import PASSWORD, WebEnv, build_env

TOKEN = "123456:settings-test-token-abcdefghijklmnop"
USER_FILE = f"""\
# hand-written
[capture]
fps = 10  # dark porch

[notify.telegram]
token = "{TOKEN}"
"""


@pytest.fixture
def env(home: Home) -> Iterator[WebEnv]:
    home.config_file.write_text(USER_FILE)
    e = build_env(home)
    e.ctx.config_path = home.config_file
    e.login()
    yield e
    e.client.close()
    e.catalogue.close()


def fields(env: WebEnv) -> dict[str, dict]:
    r = env.client.get("/api/settings")
    assert r.status_code == 200, r.text
    return {f["key"]: f for s in r.json()["sections"] for f in s["fields"]}


def test_the_form_is_read_off_the_models(env: WebEnv) -> None:
    sections = [s["key"] for s in env.client.get("/api/settings").json()["sections"]]
    for key in ("general", "capture", "detect", "detect.confirm", "record.retention",
                "notify.telegram", "notify.backup", "ir", "web", "bus.curve"):
        assert key in sections
    f = fields(env)
    fps = f["capture.fps"]
    assert (fps["kind"], fps["min"], fps["max"], fps.get("exclusive"), fps["value"]) == (
        "float", 0, 60, True, 10)
    assert fps["description"].startswith("Frames per second") and fps["optional"]
    assert f["capture.source"]["options"] == ["synthetic", "file", "v4l2", "url", "picamera2"]
    assert f["capture.rotation"]["options"] == [0, 90, 180, 270]
    assert f["detect.masks"]["kind"] == "json"
    assert f["notify.telegram.token"] == {**f["notify.telegram.token"], "kind": "secret",
                                          "set": True}
    assert "value" not in f["notify.telegram.token"]
    assert f["notify.mqtt.password"]["set"] is False


def test_no_secret_in_any_answer(env: WebEnv) -> None:
    for path in ("/api/settings", "/api/settings/history", "/api/config"):
        assert TOKEN not in env.client.get(path).text
    r = env.client.post("/api/settings/check", json={"changes": {"notify.telegram.token": ""}})
    assert TOKEN not in r.text


def test_a_bad_value_is_named_and_nothing_is_written(env: WebEnv) -> None:
    before = env.home.config_file.read_bytes()
    r = env.client.post("/api/settings/check", json={"changes": {"capture.fps": 0}})
    assert r.json() == {"ok": False, "errors": [
        {"key": "capture.fps", "message": "capture.fps: Input should be greater than 0"}]}
    r = env.client.post("/api/settings", json={"changes": {"capture.fps": 0,
                                                           "capture.hflip": True}})
    assert r.status_code == 422 and r.json()["errors"][0]["key"] == "capture.fps"
    assert env.home.config_file.read_bytes() == before
    assert env.client.get("/api/settings/history").json() == []


def test_a_good_change_is_saved_in_place(env: WebEnv) -> None:
    r = env.client.post("/api/settings", json={"changes": {"capture.fps": 12}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ok"] and out["sections"] == ["capture"] and out["restarted"] == []
    assert out["not_running"] == ["capture"]  # no supervisord in this test
    text = env.home.config_file.read_text()
    assert "fps = 12  # dark porch" in text and text.startswith("# hand-written")
    history = env.client.get("/api/settings/history").json()
    assert history[0]["by"] == "admin from testclient" and history[0]["sections"] == ["capture"]
    assert fields(env)["capture.fps"]["value"] == 12


def test_a_secret_needs_the_current_password(env: WebEnv,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    before = env.home.config_file.read_bytes()
    new = "999:another-secret-token-value-xyz"
    change = {"changes": {"notify.telegram.token": new}}
    assert env.client.post("/api/settings", json=change).status_code == 403
    wrong = {**change, "current_password": "not it"}
    assert env.client.post("/api/settings", json=wrong).status_code == 403
    assert env.home.config_file.read_bytes() == before
    r = env.client.post("/api/settings", json={**change, "current_password": PASSWORD})
    assert r.status_code == 200 and new not in r.text
    assert f'token = "{new}"' in env.home.config_file.read_text()
    assert fields(env)["notify.telegram.token"]["set"] is True
    assert new not in caplog.text and TOKEN not in caplog.text and PASSWORD not in caplog.text


def test_the_password_changes_only_with_the_current_one(env: WebEnv) -> None:
    r = env.client.post("/api/settings/password",
                        json={"current_password": "wrong", "new_password": "a new long one"})
    assert r.status_code == 403
    r = env.client.post("/api/settings/password",
                        json={"current_password": PASSWORD, "new_password": "a new long one"})
    assert r.status_code == 200
    assert env.client.get("/api/settings").status_code == 401  # every session ended
    r = env.client.post("/login", json={"username": "admin", "password": "a new long one"})
    assert r.status_code == 200


def test_a_cross_site_save_is_refused(env: WebEnv) -> None:
    before = env.home.config_file.read_bytes()
    r = env.client.post("/api/settings", json={"changes": {"capture.fps": 5}},
                        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert env.home.config_file.read_bytes() == before


def test_the_wizard_is_due_on_a_fresh_instance_only(home: Home) -> None:
    from services.web import auth

    assert wizard.state(home) == "done"  # set up before the wizard existed
    auth.password_file(home).unlink(missing_ok=True)
    password = auth.ensure_initial_password(home)
    assert password and wizard.landing(home) == "/wizard"
    e = build_env(home)  # sets the test password; the wizard stays due
    e.login()
    assert e.client.post("/api/wizard", json={"state": "skipped"}).status_code == 200
    assert wizard.landing(home) == "/"
    e.client.close()
    e.catalogue.close()


def test_v4l2_devices_are_listed(tmp_path: Path) -> None:
    from services.web.routes.settings import video_devices

    for n, name in ((0, "USB Camera"), (10, "bcm2835-isp")):
        (tmp_path / f"video{n}").mkdir()
        (tmp_path / f"video{n}" / "name").write_text(name + "\n")
    assert video_devices(tmp_path) == [
        {"device": 0, "path": "/dev/video0", "name": "USB Camera"},
        {"device": 10, "path": "/dev/video10", "name": "bcm2835-isp"}]


# -- test buttons against real local servers -------------------------------------------
def push_frame(env: WebEnv) -> None:
    img = np.zeros((120, 160, 3), np.uint8)
    img[40:80, 60:100] = 200
    env.ctx.hub.channels["cam1"].push(img, 1.0)


def test_telegram_chats_and_photo(env: WebEnv) -> None:
    bot = FakeTelegram(TOKEN).start()
    try:
        bot.push_message(4242, "hello bot")
        env.client.post("/api/settings", json={"changes": {
            "notify.telegram.base_url": bot.base_url}})
        r = env.client.post("/api/settings/telegram/chats").json()
        assert r["ok"] and [c["id"] for c in r["chats"]] == [4242]
        assert not r["chats"][0]["allowed"]
        env.client.post("/api/settings", json={"changes": {"notify.telegram.chat_ids": [4242]}})
        push_frame(env)
        r = env.client.post("/api/settings/test/telegram").json()
        assert r == {"ok": True, "message": "photo delivered to chat 4242"}
        photo = [c for c in bot.calls if c.method == "sendPhoto"][-1]
        assert photo.fields["chat_id"] == "4242"
        assert photo.files["photo"][2][:3] == b"\xff\xd8\xff"  # a JPEG
    finally:
        bot.stop()
    r = env.client.post("/api/settings/test/telegram").json()
    assert not r["ok"] and "cannot reach the Bot API" in r["message"]
    assert TOKEN not in r["message"]


def test_telegram_refused_token_is_reported(env: WebEnv) -> None:
    bot = FakeTelegram("other:token").start()  # answers 404 for any other token
    try:
        env.client.post("/api/settings", json={"changes": {
            "notify.telegram.base_url": bot.base_url}})
        r = env.client.post("/api/settings/telegram/chats").json()
        assert not r["ok"] and r["message"].startswith("getUpdates: ")
        assert TOKEN not in r["message"]
    finally:
        bot.stop()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    if not have(SSHD):
        pytest.skip(f"{SSHD} is absent (apt-get install openssh-server)")
    server = SshServer(tmp_path / "sshd").start()
    yield server
    server.stop()


def nas_changes(server: SshServer, **extra: object) -> dict:
    (server.root / "cam").mkdir(exist_ok=True)
    return {"changes": {f"notify.backup.{k}": v for k, v in {
        "host": "127.0.0.1", "port": server.port, "username": "root",
        "key_file": str(server.client_key), "known_hosts": str(server.known_hosts),
        "remote_dir": str(server.root / "cam"), "connect_timeout": 3, **extra}.items()}}


def test_nas_check_success_and_each_failure(env: WebEnv, sshd: SshServer,
                                            tmp_path: Path) -> None:
    def check(**extra: object) -> dict:
        assert env.client.post("/api/settings",
                               json=nas_changes(sshd, **extra)).status_code == 200
        return env.client.post("/api/settings/test/nas").json()

    r = check()
    assert r["ok"], r
    assert "host key verified, wrote and deleted" in r["message"]
    assert list((sshd.root / "cam").iterdir()) == []  # the test file is gone again

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    r = check(known_hosts=str(empty))
    host_pub = (sshd.dir / "host_key.pub").read_text().split()
    import base64
    import hashlib
    fp = "SHA256:" + base64.b64encode(
        hashlib.sha256(base64.b64decode(host_pub[1])).digest()).decode().rstrip("=")
    assert not r["ok"] and r["message"].startswith("unknown host key: ")
    assert fp in r["message"] and host_pub[0] in r["message"]

    r = check(remote_dir=str(sshd.root / "nope"))
    assert r == {"ok": False, "message": f"no such folder on 127.0.0.1:{sshd.port}: "
                                         f"{sshd.root / 'nope'}"}

    r = check(username="nobody-here")
    assert not r["ok"] and "refused the login of 'nobody-here'" in r["message"]

    r = check(protocol="scp")
    assert r["ok"], r


def test_nas_check_timeout(env: WebEnv, tmp_path: Path) -> None:
    import socket

    silent = socket.socket()  # listens, never speaks: a wrong port, a hung NAS
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    known = tmp_path / "kh"
    known.write_text("")
    try:
        port = silent.getsockname()[1]
        env.client.post("/api/settings", json={"changes": {
            "notify.backup.host": "127.0.0.1", "notify.backup.port": port,
            "notify.backup.known_hosts": str(known), "notify.backup.connect_timeout": 1}})
        r = env.client.post("/api/settings/test/nas").json()
        assert not r["ok"] and r["message"].startswith(f"timeout: 127.0.0.1:{port} ")
    finally:
        silent.close()
