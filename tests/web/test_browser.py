"""End to end in headless Chromium (Debian's, driven by Playwright) against the
running pipeline (``pisentry run`` on the synthetic source, in a temporary
home): log in with the password printed on first start, see the live image
change, arm and disarm, open today's event, play its clip and seek; a
screenshot of each page goes to tests/artifacts/web/.

Events come from the pipeline's own detect service when it exists; until it
does, this test stands in for detect on the bus (motion start and end and an
event snapshot, published on the ``detect`` endpoint exactly as detect would),
and the real record service writes the clip from the real h264 stream.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from common.bus import Bus
from common.config import parse_config
from common.messages import Motion, Snapshot
from tests.support import REPO, new_home, running_pipeline
from tests.web.test_service import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts" / "web"
API_KEY = "e2e-api-key-0123456789abcdef012345"
H = {"X-API-Key": API_KEY}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
    pytest.mark.timeout(180),
]

HAVE_DETECT = importlib.util.find_spec("services.detect.service") is not None


@pytest.fixture(scope="module")
def pipeline() -> Iterator[dict]:
    home = new_home()
    port = free_port()
    services = ["capture", "record", "notify", "web"] + (["detect"] if HAVE_DETECT else [])
    raw = {"general": {"services": services},
           # a 5 s walk, then long enough without one for a real detector's event to end
           "capture": {"width": 640, "height": 480, "fps": 10, "object_period": 10},
           "record": {"rec_sec_before": 1, "rec_sec_after": 1},
           "web": {"port": port, "api_key": API_KEY}}
    with running_pipeline(raw, home=home) as p:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/status", headers=H, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, p.output()
            time.sleep(0.3)
        m = re.search(r"login: admin / (\S+)", p.log.read_text())
        assert m, "first start did not print a password:\n" + p.output()
        yield {"base": base, "password": m.group(1), "pipeline": p, "home": home,
               "config": parse_config(raw)}


def make_event(pipe: dict) -> str:
    """An event with a finished clip in the catalogue, from the pipeline."""
    base = pipe["base"]
    if not HAVE_DETECT:
        bus = Bus(pipe["config"], pipe["home"])
        try:
            detect = bus.publisher("detect")
            time.sleep(1.0)  # record and web connect and subscribe
            event_id = f"e2e-{int(time.time())}"
            jpeg = httpx.get(f"{base}/api/snapshot.jpg", headers=H, timeout=5).content
            t0 = time.time()
            detect.publish(Motion, ts=t0, event_id=event_id, phase="start",
                           boxes=[[0.4, 0.4, 0.1, 0.3]], area=0.03, labels=["person"])
            detect.publish(Snapshot, [jpeg], ts=t0, event_id=event_id, kind="event",
                           width=640, height=480)
            time.sleep(3.0)
            detect.publish(Motion, ts=time.time(), event_id=event_id, phase="end",
                           boxes=[[0.6, 0.4, 0.1, 0.3]], area=0.03, labels=["person"])
        finally:
            time.sleep(0.5)
            bus.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for e in httpx.get(f"{base}/api/events", headers=H).json()["items"]:
            detail = httpx.get(f"{base}/api/events/{e['id']}", headers=H).json()
            if any(c["state"] != "open" and c["duration"] > 1 for c in detail["clips"]):
                return e["id"]
        time.sleep(0.5)
    raise AssertionError("no event with a finished clip:\n" + pipe["pipeline"].output())


@contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright, its $HOME writes kept in a scratch dir."""
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="ps-chromium-"))
    # Chromium writes under $HOME even with a profile dir: keep it in scratch.
    env = {**os.environ, "HOME": str(scratch), "XDG_CONFIG_HOME": str(scratch / "config"),
           "XDG_CACHE_HOME": str(scratch / "cache")}
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, env=env, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            yield b
            b.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def live_checksum(page: object) -> float:
    return page.evaluate("""() => {
        const img = document.querySelector('img.live');
        if (!img || !img.naturalWidth) return -1;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let s = 0; for (let i = 0; i < d.length; i += 97) s += d[i] * (i % 251);
        return s;
    }""")


def test_browser_end_to_end(pipeline: dict, browser: object) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = pipeline["base"]
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # log in with the first-start password (a wrong one first)
    response = page.goto(f"{base}/")
    assert response is not None and response.status == 401
    page.wait_for_url(f"{base}/login")  # the 401 page sends the browser to log in
    page.fill("#password", "not the password")
    page.click("#submit")
    assert page.locator(".error").inner_text() == "wrong user name or password"
    page.screenshot(path=str(ARTIFACTS / "login.png"))
    page.fill("#password", pipeline["password"])
    page.click("#submit")
    # a fresh instance's first login opens the set-up wizard; skipping it
    # lands on the live view (the wizard itself: test_settings_browser.py)
    page.wait_for_url(f"{base}/wizard")
    page.click("#skip")
    page.wait_for_url(f"{base}/")

    # the live image changes
    page.wait_for_function("() => document.querySelector('img.live') && "
                           "document.querySelector('img.live').naturalWidth > 0",
                           timeout=10_000)
    sums = []
    for _ in range(4):
        sums.append(live_checksum(page))
        time.sleep(0.6)
    assert -1 not in sums and len(set(sums)) >= 3, sums
    page.screenshot(path=str(ARTIFACTS / "live.png"))

    # the camera's own h264 in the browser (MSE), no re-encoding in between
    page.select_option("#mode", "h264")
    page.wait_for_function("() => { const v = document.querySelector('video.live-video'); "
                           "return v && v.videoWidth === 640 && v.currentTime > 0.5; }",
                           timeout=15_000)
    t1 = page.evaluate("() => document.querySelector('video.live-video').currentTime")
    # it plays, live: a further second of video can only come from frames that
    # arrive while we wait. A deadline, not a fixed window, because a loaded
    # machine may stall the player for a moment without the stream being wrong.
    try:
        page.wait_for_function("t1 => document.querySelector('video.live-video').currentTime"
                               " > t1 + 1.0", arg=t1, timeout=10_000)
    except PlaywrightTimeoutError:
        t2 = page.evaluate("() => document.querySelector('video.live-video').currentTime")
        raise AssertionError(f"h264 live view advanced {t2 - t1:.3f} s in 10 s") from None
    page.screenshot(path=str(ARTIFACTS / "live-h264.png"))
    page.select_option("#mode", "mjpeg")

    # arm and disarm from the page; the state persists in the pipeline's home
    page.click("#disarm")
    page.wait_for_function("() => document.getElementById('arm-state').textContent === 'disarmed'")
    assert httpx.get(f"{base}/api/arm", headers=H).json()["armed"] is False
    page.screenshot(path=str(ARTIFACTS / "live-disarmed.png"))
    page.click("#arm")
    page.wait_for_function("() => document.getElementById('arm-state').textContent === 'armed'")
    assert httpx.get(f"{base}/api/arm", headers=H).json()["armed"] is True

    # today's event in the timeline, with its thumbnail and the hourly chart
    event_id = make_event(pipeline)
    page.goto(f"{base}/events")
    card = page.locator(f'.event[data-event="{event_id}"]')
    card.wait_for(timeout=10_000)
    page.wait_for_function(f"""() => {{
        const img = document.querySelector('.event[data-event="{event_id}"] img');
        return img && img.complete && img.naturalWidth > 0; }}""", timeout=10_000)
    bars = page.eval_on_selector_all("#chart div", "els => els.map(e => e.style.height)")
    assert len(bars) == 24 and any(h != "0%" for h in bars)
    page.screenshot(path=str(ARTIFACTS / "events.png"), full_page=True)

    # open it, play the clip and seek
    card.locator("a").click()
    page.wait_for_url(re.compile(r".*/player\?event=.*"))
    page.wait_for_function("() => document.getElementById('video').readyState >= 1 && "
                           "isFinite(document.getElementById('video').duration)",
                           timeout=15_000)
    duration = page.evaluate("() => document.getElementById('video').duration")
    assert duration > 1
    page.evaluate("() => { const v = document.getElementById('video'); v.muted = true; "
                  "v.play(); }")
    page.wait_for_function("() => document.getElementById('video').currentTime > 0.2",
                           timeout=10_000)
    target = round(duration * 0.6, 2)
    landed = page.evaluate(f"""() => new Promise(resolve => {{
        const v = document.getElementById('video');
        v.addEventListener('seeked', () => resolve(v.currentTime), {{once: true}});
        v.currentTime = {target};
    }})""")
    assert abs(landed - target) < 1.0, (landed, target)
    page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "player.png"))
    page.click("#false")
    page.wait_for_function("() => document.getElementById('verdict').textContent === 'false_alarm'")
    assert httpx.get(f"{base}/api/events/{event_id}", headers=H).json()["verdict"] == \
        "false_alarm"

    # health and config pages
    page.goto(f"{base}/health")
    page.locator("table.services").first.wait_for(timeout=10_000)
    page.wait_for_function("() => document.querySelector('table.services').textContent"
                           ".includes('capture')")
    assert "up" in page.locator("table.services tr", has_text="capture").inner_text()
    page.screenshot(path=str(ARTIFACTS / "health.png"), full_page=True)
    page.goto(f"{base}/config")
    page.wait_for_function("() => document.getElementById('config').textContent.length > 100")
    text = page.locator("#config").inner_text()
    assert API_KEY not in text and "**********" in text
    page.screenshot(path=str(ARTIFACTS / "config.png"), full_page=True)

    # logging out ends the session
    page.click("#logout")
    page.wait_for_url(f"{base}/login")
    assert page.goto(f"{base}/api/status").status == 401
    assert not errors, errors
