"""Each finding of the hardening review replayed as an attacker would, against
real processes: `pisentry web` on loopback (raw sockets for what a client
library would refuse to send, Chromium for the cross-site page), real ZMQ
sockets with CURVE, the real record service, the real command line.

Each test names the finding it replays; each failed before its fix.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgpack
import pytest
import zmq
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from common.bus import Bus
from common.config import parse_config
from common.messages import Heartbeat, VideoPacket
from common.paths import Home
from services.web import auth
from tests.support import REPO, new_home, pisentry, pisentry_process
from tests.web.test_service import free_port

pytestmark = [pytest.mark.timeout(300)]

API_KEY = "security-test-api-key-0123456789abcdef"
H = {"X-API-Key": API_KEY}
PASSWORD = "the owner's long password"
MB = 1024 * 1024


@dataclass
class Web:
    home: Home
    port: int
    proc: object
    raw: dict

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid  # type: ignore[attr-defined]

    def log(self) -> str:
        return (self.home.root / "web.out").read_text(errors="replace")

    def memory(self) -> tuple[int, int]:
        """(resident now, resident peak) in bytes, from /proc."""
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{self.pid}/status").read_text().splitlines() if ":" in line)
        return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def wait_serving(base: str, proc: object, home: Home) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, (home.root / "web.out").read_text()  # type: ignore[attr-defined]
        try:
            if httpx.get(f"{base}/api/status", headers=H, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "web did not come up"
        time.sleep(0.2)


@pytest.fixture
def web_factory() -> Iterator[object]:
    """Starts `pisentry web` (a real process, stderr to a file as under
    supervisord); may be called again on the same home (a restart)."""
    started: list[object] = []
    homes: list[Home] = []

    def start(home: Home | None = None, web: dict | None = None,
              extra: dict | None = None, notify: bool = False) -> Web:
        """``notify``: with the notify service, which owns the arm state (web
        answers an arm or disarm only once notify has applied it)."""
        if home is None:
            home = new_home()
            homes.append(home)
            auth.set_password(home, PASSWORD)
        port = free_port()
        raw = {"general": {"services": ["web", "notify"] if notify else ["web"]},
               "web": {"port": port, "api_key": API_KEY, **(web or {})}, **(extra or {})}
        for service in ("notify", "web") if notify else ("web",):
            cm = pisentry_process(service, home=home, config=raw)
            proc = cm.__enter__()
            started.append(cm)
        base = f"http://127.0.0.1:{port}"
        wait_serving(base, proc, home)
        deadline = time.monotonic() + 15
        while notify and httpx.post(f"{base}/api/arm", headers=H, timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "notify never confirmed an arm"
        return Web(home, port, proc, raw)

    yield start
    for cm in reversed(started):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]
    for home in homes:
        shutil.rmtree(home.root, ignore_errors=True)


@pytest.fixture
def web(web_factory) -> Web:  # type: ignore[no-untyped-def]
    return web_factory()  # type: ignore[no-any-return]


def login(base: str, client: httpx.Client | None = None) -> httpx.Client:
    c = client or httpx.Client(base_url=base, timeout=10)
    r = c.post("/login", json={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c


def _raw_request(port: int, head: bytes, body_chunks: Iterator[bytes]) -> bytes:
    """Send ``head`` then as much of the body as the server takes; the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(head)
            for chunk in body_chunks:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all: the point
        s.settimeout(10)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return reply


def _chunks(total: int, size: int = MB) -> Iterator[bytes]:
    block = b"x" * size
    for _ in range(total // size):
        yield block


def _chunked(total: int, size: int = MB) -> Iterator[bytes]:
    for block in _chunks(total, size):
        yield f"{len(block):x}\r\n".encode() + block + b"\r\n"
    yield b"0\r\n\r\n"


# -- high: unauthenticated memory exhaustion ---------------------------------------------
def test_huge_body_and_header_do_not_grow_web(web: Web) -> None:
    _, peak_before = web.memory()
    for path in ("/login", "/api/arm"):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {300 * MB}\r\n\r\n").encode()
        reply = _raw_request(web.port, head, _chunks(300 * MB))
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        reply = _raw_request(web.port, head, _chunked(300 * MB))
        # 413 once /login has read 4 KiB; 401 from /api/arm, which reads nothing
        assert reply.startswith((b"HTTP/1.1 413", b"HTTP/1.1 401")), reply[:200]
    head = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: "
    reply = _raw_request(web.port, head, _chunks(200 * MB))
    assert reply.startswith(b"HTTP/1.1 4"), reply[:200]  # 400: the head is over 16 KiB
    _, peak_after = web.memory()
    assert peak_after - peak_before < 20 * MB, (peak_before, peak_after)
    assert httpx.get(f"{web.base}/api/status", headers=H, timeout=5).status_code == 200
    # a login body is a few KB at most
    r = httpx.post(f"{web.base}/login", content=b"[" * 100_000,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413


# -- medium: the login limit raced; anyone could lock the owner out ----------------------
async def _burst(base: str, n: int, source: str = "127.0.0.1") -> list[int]:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, transport=transport, limits=limits,
                                 timeout=60) as c:
        rs = await asyncio.gather(*[c.post("/login", json={"password": f"wrong {i}"})
                                    for i in range(n)])
    return [r.status_code for r in rs]


def test_concurrent_wrong_logins_are_cut_at_the_limit(web: Web) -> None:
    codes = asyncio.run(_burst(web.base, 200))
    assert codes.count(401) <= 10 and codes.count(429) >= 190, sorted(set(codes))


def test_a_burst_from_strangers_does_not_lock_the_owner_out(web: Web) -> None:
    owner = "127.0.0.9"
    c = httpx.Client(base_url=web.base, timeout=10,
                     transport=httpx.HTTPTransport(local_address=owner))
    login(web.base, c)  # the owner logged in before: a known client
    for i in range(12):  # 12 stranger addresses, 10 wrong guesses each: over the global 100
        asyncio.run(_burst(web.base, 10, source=f"127.0.1.{i + 1}"))
    fresh = httpx.Client(base_url=web.base, timeout=10,
                         transport=httpx.HTTPTransport(local_address="127.0.2.1"))
    assert fresh.post("/login", json={"password": PASSWORD}).status_code == 429  # global
    assert c.post("/login", json={"password": PASSWORD}).status_code == 200  # the owner


def test_x_forwarded_for_is_not_believed_without_a_proxy(web: Web) -> None:
    codes = [httpx.post(f"{web.base}/login", json={"password": "wrong"},
                        headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
             for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes


# -- medium: cross-site requests ---------------------------------------------------------
def test_cross_site_posts_and_websockets_are_refused(web_factory) -> None:  # type: ignore[no-untyped-def]
    web = web_factory(notify=True)
    c = login(web.base)
    assert c.post("/api/arm").status_code == 200  # no browser headers: a script
    for headers in ({"Origin": "http://evil.example"},
                    {"Origin": f"http://127.0.0.1:{web.port + 1}"},  # another port, same host
                    {"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null"}):
        r = c.post("/api/disarm", headers=headers)
        assert r.status_code == 403, (headers, r.status_code)
        assert r.headers["x-frame-options"] == "DENY"
        assert c.get("/api/arm").json()["armed"] is True
    own = {"Origin": f"http://127.0.0.1:{web.port}", "Sec-Fetch-Site": "same-origin"}
    assert c.post("/api/disarm", headers=own).json()["armed"] is False
    cookie = f"pisentry_session={c.cookies['pisentry_session']}"
    for origin in ("http://evil.example", f"http://127.0.0.1:{web.port + 1}"):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(f"ws://127.0.0.1:{web.port}/ws/events", origin=origin,  # type: ignore[arg-type]
                       additional_headers={"Cookie": cookie})
        assert refused.value.response.status_code == 403
    with ws_connect(f"ws://127.0.0.1:{web.port}/ws/events", additional_headers={
            "Cookie": cookie, "Origin": f"http://127.0.0.1:{web.port}"}) as ws:
        assert json.loads(ws.recv(timeout=5))["topic"] == "state"
    assert "ERROR" not in web.log()  # a refused WebSocket is not an error of ours


EVIL_PAGE = """<!doctype html><meta charset=utf-8><title>cute cats</title>
<form id=f method=post action="http://127.0.0.1:{port}/api/disarm"></form>
<script>
const ws = new WebSocket("ws://127.0.0.1:{port}/ws/events");
ws.onmessage = (m) => {{ document.title = "read: " + m.data; }};
ws.onerror = () => {{ document.title = "refused"; }};
fetch("http://127.0.0.1:{port}/api/disarm", {{method: "POST", mode: "no-cors",
      credentials: "include"}}).finally(() => setTimeout(() => f.submit(), 1500));
</script>"""


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is absent")
def test_a_page_on_another_port_cannot_disarm_or_listen(web_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.web.test_browser import chromium

    web = web_factory(notify=True)
    page_dir = web.home.root / "evil"
    page_dir.mkdir()
    (page_dir / "index.html").write_text(EVIL_PAGE.format(port=web.port))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(page_dir))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    httpx.post(f"{web.base}/api/arm", headers=H)
    try:
        with chromium() as browser:
            page = browser.new_page()  # type: ignore[attr-defined]
            page.goto(f"{web.base}/login")
            page.fill("#password", PASSWORD)
            page.click("#submit")
            page.wait_for_url(f"{web.base}/")
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/index.html")
            time.sleep(4)  # the fetch, the form post and the socket had their chance
            title = page.title()
            # the owner's own page still works: arm from it
            page.goto(f"{web.base}/")
            assert page.evaluate("fetch('/api/arm', {method: 'POST'}).then(r => r.status)") == 200
    finally:
        evil.shutdown()
    assert not title.startswith("read:"), title
    # nothing disarmed it: the form post landed (403), the fetch too
    assert httpx.get(f"{web.base}/api/arm", headers=H).json()["changed_by"] == "web"
    assert httpx.get(f"{web.base}/api/arm", headers=H).json()["armed"] is True
    assert "refused a cross-site POST /api/disarm" in web.log()


# -- medium: the generated password in logs/web.log --------------------------------------
def test_a_generated_password_never_reaches_the_log(web_factory) -> None:  # type: ignore[no-untyped-def]
    home = new_home()
    try:
        web = web_factory(home)  # no password set: web makes one; stderr is a file
        log = web.log()
        made = auth.initial_password_file(home)
        assert made.stat().st_mode & 0o777 == 0o600
        password = made.read_text().split("admin / ")[1].strip()
        assert password not in log and str(made) in log
        r = httpx.post(f"{web.base}/login", json={"password": password})
        assert r.status_code == 200
    finally:
        shutil.rmtree(home.root, ignore_errors=True)


# -- medium: API key guesses unlimited; a one-letter key accepted -------------------------
def test_api_key_guesses_are_limited_and_short_keys_refused(web: Web, home: Home) -> None:
    codes = [httpx.get(f"{web.base}/api/status", headers={"X-API-Key": f"guess{i}"}).status_code
             for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.5"))
    assert other.get(f"{web.base}/api/status", headers=H).status_code == 200  # not a global lock
    cfg = home.root / "short.toml"
    cfg.write_text('[web]\napi_key = "a"\n')
    r = pisentry("check-config", str(cfg), home=home)
    assert r.returncode == 2 and "web.api_key" in r.stderr and "32 characters" in r.stderr


# -- low: URL credentials shown ------------------------------------------------------------
def test_url_credentials_are_masked(web_factory, home: Home) -> None:  # type: ignore[no-untyped-def]
    url = "rtsp://admin:hunter2secret@192.168.1.20:554/stream1"
    cfg = home.root / "url.toml"
    cfg.write_text(f'[capture]\nsource = "url"\nurl = "{url}"\n')
    r = pisentry("check-config", str(cfg), home=home)
    assert r.returncode == 0, r.stderr
    assert "hunter2secret" not in r.stdout and "rtsp://admin:***@192.168.1.20:554/stream1" in r.stdout
    web = web_factory(extra={"capture": {"source": "url", "url": url}})
    shown = httpx.get(f"{web.base}/api/config", headers=H).text
    assert "hunter2secret" not in shown


# -- low: logout revocation lived in memory ------------------------------------------------
def test_a_logged_out_cookie_stays_out_after_a_restart(web_factory) -> None:  # type: ignore[no-untyped-def]
    web = web_factory()
    c = login(web.base)
    stolen = c.cookies["pisentry_session"]
    assert c.post("/logout").status_code == 200
    web.proc.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    web.proc.wait(timeout=10)  # type: ignore[attr-defined]
    web = web_factory(web.home)
    r = httpx.get(f"{web.base}/api/status", cookies={"pisentry_session": stolen})
    assert r.status_code == 401


# -- low: unauthenticated 500s --------------------------------------------------------------
def test_bad_cookies_and_deep_json_are_not_500s(web: Web) -> None:
    reply = _raw_request(web.port, b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Cookie: pisentry_session=1.2.\xe9\xff\r\nConnection: close\r\n\r\n",
                         iter(()))
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    c = login(web.base)
    r = c.post("/api/mute", content=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.status_code
    r = httpx.get(f"{web.base}/ws/events", headers={  # a refused WebSocket
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status_code == 401 and r.headers["x-frame-options"] == "DENY"
    time.sleep(0.5)
    log = web.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


def test_a_500_carries_the_security_headers(home: Home) -> None:
    from fastapi.testclient import TestClient

    from tests.web.conftest import build_env

    env = build_env(home)

    def broken() -> None:
        raise RuntimeError("a bug")

    env.client.app.router.add_api_route("/api/broken", broken)  # type: ignore[attr-defined]
    client = TestClient(env.client.app, raise_server_exceptions=False)
    r = client.get("/api/broken", headers=env.keyed())
    assert r.status_code == 500
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert r.headers["x-frame-options"] == "DENY"
    env.catalogue.close()


# -- medium: tcp+CURVE let any key pair subscribe -----------------------------------------
def _heartbeats_over_tcp(url: str, server_key: str, keys: tuple[str, str], seconds: float
                         ) -> int:
    home = new_home()
    bus = Bus(parse_config({"bus": {"curve": {"public_key": keys[0], "secret_key": keys[1]}}}),
              home)
    try:
        sub = bus.subscriber([], [Heartbeat.TOPIC], endpoints=[url], server_key=server_key)
        got = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got += len(sub.recv(0.2))
        return got
    finally:
        bus.close()
        shutil.rmtree(home.root, ignore_errors=True)


def test_tcp_endpoints_refuse_unlisted_client_keys(web_factory) -> None:  # type: ignore[no-untyped-def]
    public, secret = (k.decode() for k in zmq.curve_keypair())
    friend = tuple(k.decode() for k in zmq.curve_keypair())
    stranger = tuple(k.decode() for k in zmq.curve_keypair())
    for listed in ([], [friend[0]]):  # without authorized_clients, and with
        url = f"tcp://127.0.0.1:{free_port()}"
        web_factory(extra={"bus": {"endpoints": {"web": url}, "curve": {
            "public_key": public, "secret_key": secret, "authorized_clients": listed}}})
        assert _heartbeats_over_tcp(url, public, stranger, 3) == 0  # type: ignore[arg-type]
        assert _heartbeats_over_tcp(url, public, (public, secret), 3) > 0  # this host itself
        if listed:
            assert _heartbeats_over_tcp(url, public, friend, 3) > 0  # type: ignore[arg-type]


# -- low: abstract ipc names; a folder chmodded that pisentry did not create --------------
def test_abstract_ipc_refused_and_foreign_folders_left_alone(web_factory, home: Home) -> None:  # type: ignore[no-untyped-def]
    cfg = home.root / "abstract.toml"
    cfg.write_text('[bus.endpoints]\ndetect = "ipc://@pisentry-detect"\n')
    r = pisentry("check-config", str(cfg), home=home)
    assert r.returncode == 2 and "abstract" in r.stderr
    shared = home.root / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    web_factory(extra={"bus": {"endpoints": {"web": f"ipc://{shared}/web.sock"}}})
    assert shared.stat().st_mode & 0o777 == 0o755  # not ours to change
    assert (shared / "web.sock").stat().st_mode & 0o077 == 0  # but the socket is private


# -- low: msgpack headers unbounded --------------------------------------------------------
def test_a_huge_bus_header_is_dropped_without_memory(web: Web) -> None:
    bus = Bus(parse_config({}), web.home)
    try:
        pub = bus.publisher("capture")  # web follows capture's heartbeats
        time.sleep(1.0)  # web's subscriber connects
        _, peak_before = web.memory()
        huge = msgpack.packb({"v": 1, "camera": "cam1", "seq": 1, "ts": 1.0,
                              "service": [{}] * MB})  # 1 MB, 73 MB as objects
        for _ in range(5):
            pub._socket.send_multipart([Heartbeat.TOPIC, huge])
            time.sleep(0.3)
        _, peak_after = web.memory()
    finally:
        bus.close()
    assert peak_after - peak_before < 20 * MB, (peak_before, peak_after)
    assert httpx.get(f"{web.base}/api/status", headers=H, timeout=5).status_code == 200
    assert "dropped malformed bus message" in web.log()


# -- medium: hooks inherited every secret in the environment -------------------------------
def test_hooks_see_none_of_the_secrets(home: Home) -> None:
    from tests.notify.test_hooks import SECRETS, hook_environment

    secrets = {**SECRETS, "PISENTRY_WEB_API_KEY": API_KEY}
    seen = hook_environment(home, secrets)
    assert seen["PISENTRY_EVENT"] == "env-dump"  # the hook ran, with its event
    dumped = "\n".join(f"{k}={v}" for k, v in seen.items())
    assert not [v for v in secrets.values() if v in dumped]


# -- medium: recovery (and retention, export) followed symlinks ---------------------------
def test_record_touches_nothing_a_symlink_points_at(home: Home) -> None:
    from common.catalogue import CatalogueWriter
    from tests.web.conftest import make_mp4

    outside = Path(tempfile.mkdtemp(prefix="ps-outside-"))
    try:
        secret = outside / "secret.db"
        secret.write_bytes(b"the neighbour's data, not an mp4\n" * 100)
        victim = make_mp4(outside / "victim.mp4")
        victim_size = victim.stat().st_size
        rec = home.recordings_dir
        # 1. a clip-named link, as if record died writing it (recovery cuts torn tails)
        (rec / "cam1-20260101-120000.mp4").symlink_to(secret)
        cat = CatalogueWriter(home.catalogue)
        (rec / "cam1-20260101-120500.mp4").symlink_to(secret)
        cat.add_clip(rec / "cam1-20260101-120500.mp4", "cam1", time.time() - 60, "event")
        # 2. an old clip in a linked day folder (retention deletes old clips)
        (rec / "2020").symlink_to(outside)
        old = time.time() - 400 * 86400
        cat.add_clip(rec / "2020" / "victim.mp4", "cam1", old, "event")
        cat.finish_clip(rec / "2020" / "victim.mp4", end=old + 2, duration=2, size=victim_size,
                        frames=20)
        cat.close()
        with pisentry_process("record", home=home, config={"general": {"services": ["record"]}}
                              ) as proc:
            time.sleep(4)  # recovery at start, then the first retention pass
            assert proc.poll() is None, (home.root / "record.out").read_text()
        assert secret.read_bytes() == b"the neighbour's data, not an mp4\n" * 100
        assert victim.stat().st_size == victim_size
        # 3. export reads only clips inside the storage folder
        day = time.strftime("%Y-%m-%d")
        link = rec / "2026" / "cam1-link.mp4"
        link.parent.mkdir()
        link.symlink_to(victim)
        cat = CatalogueWriter(home.catalogue)
        cat.add_clip(link, "cam1", time.time() - 30, "event")
        cat.finish_clip(link, end=time.time() - 28, duration=2, size=victim_size, frames=20)
        cat.close()
        r = pisentry("export", "--day", day, str(home.root / "out.mp4"), home=home, timeout=60)
        assert r.returncode == 1 and "no event clips" in r.stderr, r.stdout + r.stderr
    finally:
        shutil.rmtree(outside, ignore_errors=True)


# -- low: a full disk ------------------------------------------------------------------------
@contextmanager
def full_disk(folder: Path) -> Iterator[Path]:
    """A tiny tmpfs over ``folder``, filled up: every write there is ENOSPC."""
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                       capture_output=True, check=False)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_keeps_the_arm_state_and_record_backs_off(web_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.record.h264gen import make_gop_stream

    web = web_factory(notify=True)
    home = web.home
    with full_disk(home.state_dir):
        r = httpx.post(f"{web.base}/api/disarm", headers=H, timeout=10)
        assert r.status_code == 200 and r.json()["armed"] is False, r.text
        assert httpx.get(f"{web.base}/api/arm", headers=H).json()["armed"] is False
        assert "cannot save the arm state" in (home.root / "notify.out").read_text()
    storage = home.root / "full-storage"
    raw = {"general": {"services": ["record"]},
           "record": {"storage_dir": str(storage), "continuous": True}}
    packets = make_gop_stream(1.0, fps=10)  # one GOP, replayed with fresh times
    with full_disk(storage), pisentry_process("record", home=home, config=raw) as proc:
        bus = Bus(parse_config(raw), home)
        video = bus.publisher("video")
        time.sleep(1.0)
        pts = 0
        try:
            for _ in range(80):  # 8 s at 10 fps: 8 keyframes
                p = packets[pts % len(packets)]
                video.publish(VideoPacket, [p.data], ts=time.time(), pts=pts * 100_000,
                              keyframe=p.keyframe, width=p.width, height=p.height, fps=p.fps)
                pts += 1
                time.sleep(0.1)
        finally:
            bus.close()
        assert proc.poll() is None
        left = [f for f in storage.rglob("*.mp4")]
    log = (home.root / "record.out").read_text()
    assert left == [], left  # no empty clip left behind
    assert 1 <= log.count("retrying in") <= 4, log[-2000:]  # 1, 2, 4 s apart: not 8 times


# -- low: home, recordings, logs 0755; clips and catalogue 0644 -----------------------------
def test_pisentry_run_keeps_everything_private() -> None:
    from tests.support import running_pipeline

    raw = {"general": {"services": ["capture", "record"]},
           "capture": {"width": 320, "height": 240, "fps": 10},
           "record": {"continuous": True, "fragment_seconds": 0.5}}
    with running_pipeline(raw) as p:
        home = p.home
        deadline = time.monotonic() + 40
        while not [c for c in home.recordings_dir.rglob("*.mp4") if c.stat().st_size]:
            assert time.monotonic() < deadline, p.output()
            time.sleep(0.5)
        assert home.catalogue.exists()
        written = [home.root, *(x for x in home.root.rglob("*")
                                if x.name not in ("config.toml", "run.out"))]  # the test's own
        shared = [f"{x.relative_to(home.root)} {x.stat().st_mode & 0o777:o}" for x in written
                  if x.exists() and not x.is_symlink() and x.stat().st_mode & 0o077]
    assert not shared, shared


# -- low: Telegram over http, any group member obeyed; MQTT without TLS; exception text ---
def test_telegram_obeys_only_listed_users_in_a_group(home: Home) -> None:
    from common.arming import ArmingStore
    from tests.notify.fake_telegram import FakeTelegram

    token, group, owner, member = "123456:security-test-token-0123456789", -100777, 4242, 5151
    server = FakeTelegram(token).start()
    try:
        raw = {"general": {"services": ["notify"]}, "notify": {"telegram": {
            "enabled": True, "token": token, "chat_ids": [group], "base_url": server.base_url,
            "poll_timeout": 1, "allowed_user_ids": [owner]}}}
        with pisentry_process("notify", home=home, config=raw) as proc:
            server.push_message(group, "/disarm", user_id=member)  # a guest in the family group
            time.sleep(4)
            assert proc.poll() is None, (home.root / "notify.out").read_text()
            assert ArmingStore(home).load().armed is True
            server.push_message(group, "/disarm", user_id=owner)
            deadline = time.monotonic() + 10
            while ArmingStore(home).load().armed:
                assert time.monotonic() < deadline, (home.root / "notify.out").read_text()
                time.sleep(0.2)
        log = (home.root / "notify.out").read_text()
        assert f"user {member}" in log and token not in log
    finally:
        server.stop()
    for url, why in (("http://api.telegram.example/bot", "https"),):
        cfg = home.root / "tg.toml"
        cfg.write_text(f'[notify.telegram]\nbase_url = "{url}"\n')
        r = pisentry("check-config", str(cfg), home=home)
        assert r.returncode == 2 and "notify.telegram.base_url" in r.stderr and why in r.stderr


def test_secrets_are_redacted_from_exception_text(home: Home) -> None:
    token = "123456:redact-me-in-tracebacks-0123456789"
    code = ("import logging; from common.config import parse_config; "
            "from common.logs import setup_logging; "
            f"setup_logging(parse_config({{'notify': {{'telegram': {{'token': '{token}'}}}}}}))\n"
            "try:\n"
            f"    raise ConnectionError('GET https://api.telegram.org/bot{token}/getMe failed')\n"
            "except ConnectionError:\n"
            "    logging.getLogger('x').exception('telegram down')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=30, check=False, cwd=REPO)
    assert "telegram down" in r.stderr and "Traceback" in r.stderr, r.stderr
    assert token not in r.stderr and "[secret]" in r.stderr


def test_mqtt_over_tls(home: Home) -> None:
    from tests.notify.peers import MOSQUITTO, Mosquitto, have
    from tests.notify.test_email import self_signed

    if not have(MOSQUITTO):
        pytest.skip("mosquitto is needed")
    # mosquitto started as root drops to its own user: it reads the key from a
    # folder that user can open, not from the private home
    certs = Path(tempfile.mkdtemp(prefix="ps-mqtt-tls-"))
    certs.chmod(0o755)
    cert, key = self_signed(certs)
    key.chmod(0o644)
    broker = Mosquitto(certs / "broker", tls=(cert, key)).start()
    try:
        raw = {"general": {"services": ["notify"]}, "notify": {"mqtt": {
            "enabled": True, "host": "127.0.0.1", "port": broker.port, "tls": True,
            "ca_file": str(cert)}}}
        with pisentry_process("notify", home=home, config=raw) as proc:
            deadline = time.monotonic() + 15
            while "mqtt: connected" not in (home.root / "notify.out").read_text():
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (home.root / "notify.out").read_text()
                time.sleep(0.2)
        # without the CA the broker's certificate is refused: no connection
        raw["notify"]["mqtt"]["ca_file"] = ""
        with pisentry_process("notify", home=home, config=raw):
            time.sleep(4)
        assert "mqtt: connected" not in (home.root / "notify.out").read_text()
    finally:
        broker.stop()
        shutil.rmtree(certs, ignore_errors=True)
