"""The mask editor and the motion tuner in headless Chromium against
``pisentry run`` (synthetic camera, real capture, detect, record and web under
supervisord, in a temporary home).

- Tuner: with the passer-by on screen, the threshold slider goes to its top;
  within a second the overlay (detect's moving pixels, drawn on the page's
  canvas) is empty and says detect uses the new value (screenshots of both);
  back down, detect follows within a second and moving pixels show again.
- Editor: a mask is drawn with mouse clicks over the left part of the path the
  passer-by walks, a corner dragged, and saved (through the settings page's
  save). Only detect restarts (the other pids stay), and from then on no event
  has a box inside the mask (``/api/events``) while the passer-by still opens
  events in the rest of the picture.

Screenshots at desktop and phone size go to tests/artifacts/web/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import REPO, new_home, running_pipeline
from tests.web.test_browser import CHROMIUM, chromium
from tests.web.test_service import free_port

ARTIFACTS = REPO / "tests" / "artifacts" / "web"
API_KEY = "motion-e2e-api-key-0123456789abcdef"
H = {"X-API-Key": API_KEY}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
    pytest.mark.timeout(300),
]

# Counts the overlay canvas's red pixels (what the page drew, read back).
RED_PIXELS = """() => {
    const c = document.getElementById('overlay');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] > 200 && d[i + 1] < 80) n++;
    return n;
}"""


@pytest.fixture(scope="module")
def pipeline() -> Iterator[dict[str, Any]]:
    home = new_home()
    port = free_port()
    raw = {"general": {"services": ["capture", "detect", "record", "web"]},
           # a 5 s walk every 10 s; events end soon after it leaves
           "capture": {"width": 640, "height": 480, "fps": 10, "object_period": 10},
           "detect": {"quiet_seconds": 1.0},
           "record": {"rec_sec_before": 1, "rec_sec_after": 1},
           "web": {"port": port, "api_key": API_KEY}}
    with running_pipeline(raw, home=home) as p:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 40
        while True:
            try:
                if httpx.get(f"{base}/api/status", headers=H, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, p.output()
            time.sleep(0.3)
        # The first-run wizard (its own tests) would open on the first login.
        r = httpx.post(f"{base}/api/wizard", json={"state": "skipped"}, headers=H, timeout=5)
        assert r.status_code == 200, r.text
        m = re.search(r"login: admin / (\S+)", p.log.read_text())
        assert m, "first start did not print a password:\n" + p.output()
        yield {"base": base, "password": m.group(1), "pipeline": p, "home": home}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def wait_overlay(page: Any, condition: str, what: str, timeout: float = 5.0) -> float:
    """Seconds until ``condition`` (JS, on the page's last overlay and canvas)
    holds; fails naming ``what`` and the overlay's last state."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if page.evaluate(f"() => {condition}"):
            return time.monotonic() - t0
        time.sleep(0.02)
    state = page.evaluate("() => window.tunerState.lastOverlay")
    raise AssertionError(f"{what}: not within {timeout} s; red pixels "
                         f"{page.evaluate(RED_PIXELS)}, last overlay {state}")


def logged_in(browser: Any, pipe: dict[str, Any], viewport: dict[str, int]) -> Any:
    page = browser.new_page(viewport=viewport)
    page.goto(f"{pipe['base']}/login")
    page.fill("#password", pipe["password"])
    page.click("#submit")
    page.wait_for_url(f"{pipe['base']}/")
    return page


def test_tuner_threshold_changes_the_overlay_within_a_second(pipeline: dict[str, Any],
                                                             browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = logged_in(browser, pipeline, DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{pipeline['base']}/tuner")
    page.wait_for_function("() => window.tunerState && window.tunerState.lastOverlay",
                           timeout=15_000)
    assert page.evaluate("() => window.tunerState.lastOverlay.tuning") == {
        "min_pixel_delta_trigger": 25, "min_trigger_area": 0.002, "frames_to_start": 2}
    # A passer-by who has just come in (seconds of walk left): between two of
    # them nothing moves, then plenty does.
    page.wait_for_function(f"() => ({RED_PIXELS})() === 0", timeout=30_000, polling=50)
    page.wait_for_function(f"() => ({RED_PIXELS})() > 1500", timeout=30_000, polling=50)
    before = page.evaluate(RED_PIXELS)
    stage = page.locator("#stage")
    stage.screenshot(path=str(ARTIFACTS / "tuner-threshold-25.png"))

    page.fill("#min_pixel_delta_trigger", "255")
    took = wait_overlay(page, "window.tunerState.lastOverlay.tuning.min_pixel_delta_trigger "
                              f"=== 255 && ({RED_PIXELS})() === 0", "empty at 255",
                        timeout=30)  # how soon is a bench figure: printed below
    stage.screenshot(path=str(ARTIFACTS / "tuner-threshold-255.png"))

    # Back down: detect uses it, and the passer-by (this one, or the next if
    # this one has left meanwhile) shows again.
    page.fill("#min_pixel_delta_trigger", "25")
    back = wait_overlay(page, "window.tunerState.lastOverlay.tuning.min_pixel_delta_trigger "
                              "=== 25", "detect back at 25", timeout=30)
    wait_overlay(page, f"({RED_PIXELS})() > 300", "moving again at 25", timeout=15)
    page.screenshot(path=str(ARTIFACTS / "tuner-desktop.png"))
    print(f"tuner: {before} red pixels at 25; 0 at 255 after {took:.3f} s; "
          f"detect back at 25 after {back:.3f} s")
    # Unsaved values stay as they were in the file.
    got = httpx.get(f"{pipeline['base']}/api/motion/tuning", headers=H).json()
    assert got["saved"]["min_pixel_delta_trigger"] == 25
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "tuner-phone.png"), full_page=True)
    assert not errors, errors
    page.close()

# The left half of the passer-by's path (it walks along y 0.5..0.82, edge to edge).
MASK = [(0.02, 0.42), (0.5, 0.42), (0.5, 0.95), (0.02, 0.95)]
MASK_RIGHT = 0.5


def supervised_pids(home: Any) -> dict[str, int]:
    """Each service's pid as supervisord has it (its XML-RPC on the unix socket)."""
    from common.supervisor_client import SupervisorClient

    with SupervisorClient.for_home(home) as client:
        return {p.name: p.pid for p in client.processes(False)}


def events_since(base: str, since: float) -> list[dict[str, Any]]:
    items = httpx.get(f"{base}/api/events", params={"limit": 200}, headers=H,
                      timeout=5).json()["items"]
    return [e for e in items if e["start"] >= since]


def inside_mask(box: list[float]) -> bool:
    """A box that lies in the masked part of the path (wholly left of its edge;
    a moving sliver just right of the edge is outside)."""
    x, _y, w, _h = box
    return x + w <= MASK_RIGHT


def test_mask_drawn_in_the_browser_stops_events_there_and_restarts_only_detect(
        pipeline: dict[str, Any], browser: Any) -> None:
    base, home = pipeline["base"], pipeline["home"]
    started = time.time()
    # Unmasked, the passer-by opens events on the left too (walking right to
    # left it ends at the left edge, its last boxes there).
    deadline = time.monotonic() + 60
    while not any(inside_mask(b) for e in events_since(base, started) for b in e["boxes"]):
        assert time.monotonic() < deadline, events_since(base, started)
        time.sleep(0.5)

    page = logged_in(browser, pipeline, DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/masks")
    page.wait_for_function("() => document.getElementById('picture').naturalWidth > 0",
                           timeout=10_000)
    page.click("#new-mask")
    box = page.locator("#drawing").bounding_box()
    assert box is not None
    for x, y in MASK:
        page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
    assert page.locator("#drawing polygon").count() == 1
    assert page.locator("#drawing circle").count() == 4
    # drag the last corner a little and back: corners move with the mouse
    corner = page.locator("#drawing circle").nth(3)
    c = corner.bounding_box()
    assert c is not None
    page.mouse.move(c["x"] + c["width"] / 2, c["y"] + c["height"] / 2)
    page.mouse.down()
    page.mouse.move(c["x"] + 40, c["y"] - 30, steps=4)
    moved = page.evaluate("() => document.querySelectorAll('#drawing circle')[3].getAttribute('cx')")
    page.mouse.move(box["x"] + MASK[3][0] * box["width"], box["y"] + MASK[3][1] * box["height"],
                    steps=4)
    page.mouse.up()
    back = page.evaluate("() => document.querySelectorAll('#drawing circle')[3].getAttribute('cx')")
    assert float(moved) > float(back)
    page.screenshot(path=str(ARTIFACTS / "masks-desktop.png"))

    before = supervised_pids(home)
    page.click("#save")
    page.wait_for_function("() => document.getElementById('message').className.includes('ok')"
                           " && document.getElementById('message').textContent.startsWith('Saved')",
                           timeout=30_000)
    # The answer comes once the new detect is up (its first heartbeat):
    # from here on it watches with the mask.
    saved_at = time.time()
    saved = httpx.get(f"{base}/api/motion/regions", headers=H).json()["masks"]
    assert len(saved) == 1 and all(abs(p[0] - q[0]) < 0.01 and abs(p[1] - q[1]) < 0.01
                                   for p, q in zip(saved[0], MASK, strict=True)), saved
    after = supervised_pids(home)
    assert after["detect"] != before["detect"]
    assert {k: v for k, v in after.items() if k != "detect"} == \
        {k: v for k, v in before.items() if k != "detect"}

    # From now on: events, but none inside the mask.
    deadline = time.monotonic() + 60
    while len(events_since(base, saved_at)) < 3:
        assert time.monotonic() < deadline, events_since(base, saved_at)
        time.sleep(0.5)
    after_events = events_since(base, saved_at)
    assert not [e for e in after_events if any(inside_mask(b) for b in e["boxes"])], \
        [(e["id"], e["boxes"]) for e in after_events]
    assert all(b[0] >= MASK_RIGHT - 0.02 for e in after_events for b in e["boxes"]), \
        [(e["id"], e["boxes"]) for e in after_events]

    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "masks-phone.png"), full_page=True)
    assert not errors, errors
    page.close()
