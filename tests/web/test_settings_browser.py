"""The settings pages and the first-run wizard in headless Chromium against
``pisentry run`` (capture, record, notify and web under supervisord, in a
temporary home), with a local Bot-API server and a local sshd:

- the wizard, on the first login with the generated password: a live
  preview, a new password, the Telegram token, the chat found through
  getUpdates allowed with one click and a test photo delivered to it, the
  NAS checked (success, then an unknown host key reported as such);
- fps = 0 shows the field's error, Save stays off and config.toml is
  byte-identical;
- a change that makes capture fail its setup is rolled back and the page
  shows capture's one-line error; a good change restarts capture only.

Screenshots of each page at desktop and phone size go to tests/artifacts/web/
(docs/screenshots/ with PISENTRY_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.notify.fake_telegram import FakeTelegram
from tests.notify.peers import SSHD, SshServer, have
from tests.support import REPO, Pipeline, new_home
from tests.web.test_browser import CHROMIUM, chromium
from tests.web.test_service import free_port

# The README's pictures are refreshed on request only: a test run must leave the
# tracked files as they are (PISENTRY_UPDATE_SCREENSHOTS=1 writes docs/screenshots/).
SHOTS = (REPO / "docs" / "screenshots" if os.environ.get("PISENTRY_UPDATE_SCREENSHOTS")
         else REPO / "tests" / "artifacts" / "web")
API_KEY = "settings-e2e-api-key-0123456789abcdef"
H = {"X-API-Key": API_KEY}
TOKEN = "424242:wizard-test-token-abcdefghijklmn"
NEW_PASSWORD = "my own long password"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent"),
    pytest.mark.skipif(not have(SSHD), reason=f"{SSHD} is absent"),
    pytest.mark.timeout(420),
]


@pytest.fixture(scope="module")
def setup() -> Iterator[dict]:
    home = new_home()
    port = free_port()
    bot = FakeTelegram(TOKEN).start()
    nas = SshServer(home.root / "sshd").start()
    (nas.root / "clips").mkdir()
    config = home.config_file
    config.write_text(f"""\
# my porch camera
[general]
services = ["capture", "record", "notify", "web"]

[capture]
# small and slow: this machine is shared
width = 320
height = 240
fps = 5
live_width = 320
live_height = 240

[notify.telegram]
base_url = "{bot.base_url}"  # a local Bot API server

[web]
port = {port}
api_key = "{API_KEY}"
""")
    pipeline = Pipeline(home, config).start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/status", headers=H, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, pipeline.output()
            time.sleep(0.3)
        m = re.search(r"login: admin / (\S+)", pipeline.log.read_text())
        assert m, pipeline.output()
        SHOTS.mkdir(parents=True, exist_ok=True)
        with chromium() as browser:
            yield {"base": base, "password": m.group(1), "pipeline": pipeline, "home": home,
                   "config": config, "bot": bot, "nas": nas, "browser": browser}
    finally:
        pipeline.stop()
        bot.stop()
        nas.stop()


def pids(setup: dict) -> dict[str, int]:
    return {s: setup["pipeline"].service_pid(s) for s in ("capture", "record", "notify", "web")}


def wait_healthy(setup: dict, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{setup['base']}/api/status", headers=H, timeout=5).json()["all_alive"]:
            return
        time.sleep(0.5)
    raise AssertionError("services not all alive:\n" + setup["pipeline"].output())


def shoot(page: object, name: str, keep: bool = True, focus: str = "") -> None:
    """The page at desktop size, then at phone size, where it must not scroll
    sideways; ``keep``: the two pictures go to SHOTS, centred on
    ``focus`` (a selector) if given."""
    def centre() -> None:
        if focus:
            page.eval_on_selector(focus, "e => e.scrollIntoView({block: 'center'})")
    page.set_viewport_size(DESKTOP)
    centre()
    if keep:
        page.screenshot(path=str(SHOTS / f"{name}-desktop.png"))
    page.set_viewport_size(PHONE)
    time.sleep(0.2)
    centre()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (
        f"{name} scrolls sideways on a phone")
    if keep:
        page.screenshot(path=str(SHOTS / f"{name}-phone.png"))
    page.set_viewport_size(DESKTOP)


def test_1_wizard_on_first_login(setup: dict) -> None:
    base, bot, nas = setup["base"], setup["bot"], setup["nas"]
    page = setup["browser"].new_page(viewport=DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/login")
    page.fill("#password", setup["password"])
    page.click("#submit")
    page.wait_for_url(f"{base}/wizard")

    # 1. camera: the live preview shows, the sources come from the config model
    page.wait_for_function("() => (document.getElementById('preview') || {}).naturalWidth > 0",
                           timeout=20_000)
    options = page.locator("#f-capture__source option").all_inner_texts()
    assert options == ["synthetic", "file", "v4l2", "url", "picamera2"]
    page.locator("#v4l2-devices li").first.wait_for()
    shoot(page, "wizard-1-camera")
    page.click("#next")

    # 2. a password of one's own
    page.fill("#current-password", setup["password"])
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password-again", NEW_PASSWORD)
    page.click("#password-apply")
    page.wait_for_function("() => document.getElementById('password-result').textContent"
                           " === 'Password changed.'")
    shoot(page, "wizard-2-password")
    page.click("#next")

    # 3. Telegram: token, the chat that wrote to the bot, one click, a photo
    bot.push_message(777001, "hello camera")
    page.fill("#f-notify__telegram__token", TOKEN)
    assert page.input_value("#telegram-password") == NEW_PASSWORD
    page.click("#find-chats")
    allow = page.locator('.allow-chat[data-chat="777001"]')
    try:
        allow.wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001 - any wait failure: show the page and the logs
        raise AssertionError(page.inner_text("#step") + setup["pipeline"].output()) from None
    assert TOKEN in setup["config"].read_text()
    allow.click()
    page.locator("#chat-list .ok").wait_for(timeout=60_000)
    page.wait_for_function("() => /Saved/.test(document.getElementById('telegram-result')"
                           ".textContent)", timeout=60_000)
    assert "chat_ids = [777001]" in setup["config"].read_text()
    page.click("#test-telegram")
    page.wait_for_function("() => /delivered|failed|:/.test(document.getElementById("
                           "'test-telegram-result').textContent)", timeout=30_000)
    assert page.inner_text("#test-telegram-result") == "photo delivered to chat 777001"
    photo = [c for c in bot.calls if c.method == "sendPhoto" and
             c.fields.get("chat_id") == "777001"]
    assert photo and photo[-1].files["photo"][2][:3] == b"\xff\xd8\xff"
    shoot(page, "wizard-3-telegram", focus="#test-telegram")
    page.click("#next")

    # 4. the NAS: success, then an unknown host key named as such
    for key, value in (("host", "127.0.0.1"), ("port", str(nas.port)), ("username", "root"),
                       ("key_file", str(nas.client_key)),
                       ("known_hosts", str(nas.known_hosts)),
                       ("remote_dir", str(nas.root / "clips"))):
        page.fill(f"#f-notify__backup__{key}", value)
    page.click("#test-nas")
    result = page.locator("#test-nas-result")
    page.wait_for_function("() => !/connecting|^$/.test(document.getElementById("
                           "'test-nas-result').textContent)", timeout=60_000)
    assert result.inner_text().startswith("connected to 127.0.0.1:"), result.inner_text()
    assert "host key verified" in result.inner_text()
    shoot(page, "wizard-4-nas", focus="#test-nas")
    empty = setup["home"].root / "empty_known_hosts"
    empty.write_text("")
    page.fill("#f-notify__backup__known_hosts", str(empty))
    page.click("#test-nas")
    page.wait_for_function("() => /unknown host key/.test(document.getElementById("
                           "'test-nas-result').textContent)", timeout=60_000)
    assert "SHA256:" in result.inner_text()
    page.click("#next")  # Finish
    page.wait_for_url(f"{base}/")
    assert errors == []
    page.close()


def settings_page(setup: dict, tab: str) -> object:
    page = setup["browser"].new_page(viewport=DESKTOP)
    page.goto(f"{setup['base']}/login")
    page.fill("#password", NEW_PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{setup['base']}/")  # the wizard is done: the live view
    page.goto(f"{setup['base']}/settings#{tab}")
    page.locator("#f-capture__fps").wait_for()
    return page


def test_2_a_bad_value_shows_its_error_and_writes_nothing(setup: dict) -> None:
    page = settings_page(setup, "capture")
    before = setup["config"].read_bytes()
    for tab in ("general", "capture", "detect", "record", "notify", "ir", "web", "health"):
        page.click(f'.tabs button[data-tab="{tab}"]')
        shoot(page, f"settings-{tab}", keep=tab in ("capture", "notify"))
    page.click('.tabs button[data-tab="capture"]')
    page.fill("#f-capture__fps", "0")
    error = page.locator('.field-error[data-key="capture.fps"]')
    page.wait_for_function("() => document.querySelector('.field-error[data-key=\"capture.fps\"]')"
                           ".textContent !== ''")
    assert error.inner_text() == "capture.fps: Input should be greater than 0"
    assert page.locator("#save").is_disabled()
    assert "invalid" in page.inner_text("#save-state")
    shoot(page, "settings-error", focus='.field-error[data-key="capture.fps"]')
    # the save API refuses it too, from the page's own session
    status = page.evaluate("""async () => (await fetch('/api/settings', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({changes: {'capture.fps': 0}})})).status""")
    assert status == 422
    assert setup["config"].read_bytes() == before
    page.close()


def test_3_a_failing_change_is_rolled_back_and_a_good_one_restarts_only_its_service(
        setup: dict) -> None:
    wait_healthy(setup)
    page = settings_page(setup, "capture")
    before_text = setup["config"].read_bytes()
    before = pids(setup)
    page.select_option("#f-capture__source", label="file")
    page.fill("#f-capture__path", "/nonexistent/porch.mp4")
    page.wait_for_function("() => !document.getElementById('save').disabled")
    page.click("#save")
    page.wait_for_function("() => /Not applied|Saved/.test(document.getElementById("
                           "'save-result').textContent)", timeout=180_000)
    said = page.inner_text("#save-result")
    assert said.startswith("Not applied: capture: capture.source=file: "
                           "/nonexistent/porch.mp4: no such file or folder"), said
    assert "previous config was put back and is running again" in said
    shoot(page, "settings-rollback", focus="#f-capture__path")
    assert setup["config"].read_bytes() == before_text
    after = pids(setup)
    assert after["capture"] != before["capture"]
    assert {s: after[s] for s in ("record", "notify", "web")} == {
        s: before[s] for s in ("record", "notify", "web")}
    history = httpx.get(f"{setup['base']}/api/settings/history", headers=H).json()
    assert history[0]["by"] == "rollback (capture failed)"

    # a good change: capture restarts, nothing else; the user's comments stay
    page.reload()
    page.locator("#f-capture__annotate_text").wait_for()
    page.fill("#f-capture__annotate_text", "porch")
    page.wait_for_function("() => !document.getElementById('save').disabled")
    page.click("#save")
    page.wait_for_function("() => /Not applied|Saved/.test(document.getElementById("
                           "'save-result').textContent)", timeout=120_000)
    assert page.inner_text("#save-result") == "Saved (capture). Restarted capture."
    text = setup["config"].read_text()
    assert 'annotate_text = "porch"' in text and "# small and slow: this machine is shared" in text
    final = pids(setup)
    assert final["capture"] != after["capture"]
    assert {s: final[s] for s in ("record", "notify", "web")} == {
        s: before[s] for s in ("record", "notify", "web")}
    page.close()
