"""Bad input and the security sweep, against one whole running instance.

- 10,000 random and mutated bus messages from each producer's endpoint (the
  producer stopped, the fuzzer bound in its place), on every topic: no
  service crashes (each keeps its pid), heartbeats keep flowing, and every
  service counts malformed messages.
- Serial line noise from the IR controller (a simulated device on a real pty).
- 100 broken config files, made by mutating deploy/pisentry.example.toml:
  each one clear line, and exit 2 from the real command.
- ipc sockets in a directory only the user can open; tcp endpoints refuse a
  peer without the server's CURVE key; no configured secret in any log file of
  the run nor in ``pisentry check-config``.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from common.bus import Bus
from common.config import ConfigError, load_config, parse_config
from common.messages import (
    ArmState,
    Brightness,
    Forget,
    Frame,
    Heartbeat,
    LiveFrame,
    Motion,
    MotionOverlay,
    Mute,
    Notice,
    Overlay,
    PirMotion,
    Recording,
    Rotate,
    Snapshot,
    Tune,
    VideoPacket,
    encode,
)
from services.ir.simulator import SimulatedDevice
from tests.support import REPO, pisentry
from tests.system.conftest import System
from tests.system.harness import API_HEADERS, SECRETS, mapped_libraries, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SAMPLES = [
    Frame("cam1", 1, 1.0, 320, 240, "yuv420"), LiveFrame("cam1", 1, 1.0, 640, 480, "bgr24"),
    VideoPacket("cam1", 1, 1.0, 1000, True, 640, 480, 15.0),
    Motion("cam1", 1, 1.0, "fz", "update", [[0.1, 0.1, 0.2, 0.2]], 0.1, 0.5),
    Snapshot("cam1", 1, 1.0, "fz", "event", 320, 240),
    Recording("cam1", 1, 1.0, "finished", "/nonexistent/fz.mp4", 1.0, 2.0, 1.0, 10),
    Brightness("cam1", 1, 1.0, 0.5, 0.0), PirMotion("cam1", 1, 1.0, True),
    Mute("cam1", 1, 1.0, "web", 1.0),
    Rotate("cam1", 1, 1.0, "notify", {"pan": 30}), Forget("cam1", 1, 1.0, "notify", "/r/x.mp4"),
    Notice("cam1", 1, 1.0, "record", "storage", "disk full"),
    ArmState("cam1", 1, 1.0, True), Heartbeat("cam1", 1, 1.0, "fuzzer", 1, 1.0, "ok"),
    Tune("cam1", 1, 1.0, "web", 25, 0.002, 2), Overlay("cam1", 1, 1.0, "web", 5.0),
    MotionOverlay("cam1", 1, 1.0, 160, 120, [[0.1, 0.1, 0.2, 0.2]], 0.01, True, False, 25,
                  0.002, 2),
]
# Who binds which endpoints and what each carries: the fuzzer takes each
# producer's place in turn and sends its topics (a topic nobody subscribes to on
# an endpoint is filtered out by the publisher and would reach no service).
PRODUCERS = {"capture": ["frames", "video", "capture"], "detect": ["detect"],
             "record": ["record"], "notify": ["notify"], "ir": ["ir"], "web": ["web"]}
CARRIES = {"frames": [Frame, LiveFrame], "video": [VideoPacket], "capture": [Heartbeat],
           "detect": [Motion, Snapshot, MotionOverlay, Heartbeat],
           "record": [Recording, Snapshot, Notice, Heartbeat],
           "notify": [Rotate, Forget, ArmState, Heartbeat], "ir": [Brightness, PirMotion, Heartbeat],
           "web": [Mute, Tune, Overlay, Heartbeat]}
PER_TOPIC = 10_000  # over all the endpoints that carry it


def junk(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def mutated(rng: random.Random, kind_of: type) -> list[bytes]:
    """One bad message of topic ``kind_of``: garbage, a damaged header, a wrong
    field, or a valid header with a payload that lies."""
    sample = next(m for m in SAMPLES if type(m) is kind_of)
    topic, header = encode(sample)
    kind = rng.randrange(10)
    if kind == 0:
        return [topic, junk(rng, rng.randrange(0, 64))]
    if kind == 1:
        b = bytearray(header)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return [topic, bytes(b)]
    if kind == 2:
        return [topic, header[:rng.randrange(len(header))]]
    body = msgpack.unpackb(header)
    if kind == 3:
        key = rng.choice([k for k in body if k != "v"])
        body[key] = rng.choice([None, "x" * rng.randrange(300), -1, 2**62, 1.5, [], {}, True,
                                b"\x00"])
    elif kind == 4:
        body["v"] = rng.choice([0, 2, "1", None])
    elif kind == 5:
        del body[rng.choice([k for k in body if k != "v"])]
    elif kind == 6:
        return [rng.choice([topic, b"motion", b"frame/lores/x/", b"", junk(rng, 8)])]
    elif kind == 7:  # a header that decodes, its payload garbage or missing
        return [topic, header, *[junk(rng, rng.randrange(0, 5000))
                                 for _ in range(rng.randrange(0, 3))]]
    elif kind == 8:  # decodes, absurd values
        for key, value in list(body.items()):
            if key in ("v", "camera", "seq", "ts") or rng.random() < 0.5:
                continue
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                body[key] = rng.choice([0, -1, 2**31, 7])
            elif isinstance(value, float):
                body[key] = rng.choice([float("nan"), float("inf"), -1.0, 1e300])
            elif isinstance(value, str):
                body[key] = rng.choice(["", "../../etc/passwd", "\x00", "é" * 500])
    else:
        body = rng.choice([[1, 2], "text", 7, {"v": 1}])
    return [topic, msgpack.packb(body)]


def supervisorctl(system: System, *args: str) -> str:
    return subprocess.run([str(Path(sys.executable).with_name("supervisorctl")), "-c",
                           str(system.home.run_dir / "supervisord.conf"), *args],
                          capture_output=True, text=True, timeout=30, check=False).stdout


@pytest.fixture(scope="module")
def device() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="ps-tty-"))
    dev = SimulatedDevice(folder / "usb.tty", brightness=0.6)
    dev.plug()
    yield dev
    dev.unplug()


@pytest.fixture(scope="module")
def system(system_factory: Any, device: SimulatedDevice) -> System:
    s = system_factory(ir={"serial_port": str(device.link_path)},
                       record={"event_timeout_seconds": 10})
    # A full run: an alert, a mail, a backup, MQTT up, before anything is checked.
    wait_until(lambda: s.peers.telegram.of("sendPhoto") and s.peers.smtp.messages
               and s.peers.nas_clips(), 60, "an alert, a mail and a backup")
    return s


def test_random_and_mutated_bus_messages_crash_nothing(system: System) -> None:
    rng = random.Random(8)
    pids = {svc: system.pipe.service_pid(svc) for svc in PRODUCERS}
    allowed = {svc: {pid} for svc, pid in pids.items()}
    carriers = {kind: sum(kind in kinds for kinds in CARRIES.values()) for kind in
                {k for kinds in CARRIES.values() for k in kinds}}
    sent: dict[str, int] = {}
    for producer, endpoints in PRODUCERS.items():
        supervisorctl(system, "stop", producer)
        bus = Bus(system.config, system.home)
        try:
            pubs = {name: bus.publisher(name, hwm=100_000) for name in endpoints}
            time.sleep(0.6)  # subscribers reconnect to the fuzzer
            plan = [(name, kind) for name in endpoints for kind in CARRIES[name]
                    for _ in range(-(-PER_TOPIC // carriers[kind]))]
            rng.shuffle(plan)
            for i, (name, kind) in enumerate(plan):
                pubs[name]._socket.send_multipart(mutated(rng, kind))
                sent[kind.__name__] = sent.get(kind.__name__, 0) + 1
                if i % 50 == 49:
                    time.sleep(0.004)  # paced so subscribers read rather than drop
            time.sleep(0.5)
        finally:
            bus.close()
        supervisorctl(system, "start", producer)
        allowed[producer].add(system.pipe.service_pid(producer))
    wait_until(lambda: system.status()[0] == 0, 30, "every service healthy again")
    seen: dict[str, set[int]] = {svc: set() for svc in PRODUCERS}
    malformed: dict[str, int] = {svc: 0 for svc in PRODUCERS}
    for hb in list(system.watch.history):
        if hb.service in seen:
            seen[hb.service].add(hb.pid)
            malformed[hb.service] = max(malformed[hb.service], hb.counters.get("malformed", 0))
    crashed = {svc: sorted(seen[svc] - allowed[svc]) for svc in seen if seen[svc] - allowed[svc]}
    assert not crashed, f"services restarted by themselves: {crashed}\n{system.pipe.output()}"
    assert "not expected" not in (system.home.log_dir / "supervisord.log").read_text()
    quiet = [svc for svc, n in malformed.items() if n == 0]
    assert not quiet, f"no malformed message counted by {quiet}: {malformed}"
    assert min(sent.values()) >= PER_TOPIC and len(sent) == len(SAMPLES), sent
    print(f"sent {sum(sent.values())} bad messages ({sent}); malformed counted: {malformed}")
    # The fuzz may have disarmed or muted the camera (valid messages): undo both.
    import httpx
    httpx.post(f"{system.base}/api/arm", headers=API_HEADERS, timeout=5)
    httpx.post(f"{system.base}/api/mute", json={"minutes": 0}, headers=API_HEADERS, timeout=5)


def test_serial_line_noise_crashes_nothing(system: System, device: SimulatedDevice) -> None:
    rng = random.Random(3)
    pid = system.pipe.service_pid("ir")
    for _ in range(200):
        device.inject(junk(rng, rng.randrange(1, 400)))
        time.sleep(0.005)
    time.sleep(1.5)

    def noisy() -> bool:
        hb = system.watch.heartbeat("ir")
        return bool(hb and hb.pid == pid and hb.counters.get("noise", 0) >= 10
                    and hb.counters.get("connected"))
    wait_until(noisy, 15, "ir to count noise and stay connected")
    assert system.pipe.service_pid("ir") == pid


def _broken_configs(rng: random.Random, n: int) -> list[str]:
    """Mutations of the example config that are wrong (checked by parsing)."""
    lines = (REPO / "deploy" / "pisentry.example.toml").read_text().splitlines()
    keyed = [i for i, line in enumerate(lines) if "=" in line and not line.startswith("#")]
    out: list[str] = []
    while len(out) < n:
        copy = list(lines)
        i = rng.choice(keyed)
        key, _, value = copy[i].partition(" = ")
        kind = rng.randrange(6)
        if kind == 0:
            copy[i] = f"{key}x = {value}"  # unknown key
        elif kind == 1:
            copy[i] = f"{key} = {rng.choice(['-5', '1e9', '99999999'])}"  # out of range
        elif kind == 2:
            copy[i] = f"{key} = {rng.choice(['{a = 1}', '[1, {}]', 'true', 'nan'])}"
        elif kind == 3:
            copy[i] = f"{key} = {value[:-1] if len(value) > 1 else '='}"  # broken syntax
        elif kind == 4:
            copy[i] = copy[i] + "\n" + copy[i]  # key twice
        else:
            copy[i] = f'{key} = "{rng.choice(["nonsense", "", "../x", "ÿ"])}"'
        text = "\n".join(copy) + "\n"
        path = Path(tempfile.mkstemp(suffix=".toml")[1])
        path.write_text(text)
        try:
            load_config(str(path), None)
        except ConfigError:
            out.append(text)
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__} instead of ConfigError for:\n"
                                 f"{copy[i]}") from exc
        finally:
            path.unlink()
    return out


def test_hundred_broken_configs_are_one_clear_line_each(tmp_path: Path) -> None:
    texts = _broken_configs(random.Random(100), 100)
    for n, text in enumerate(texts):
        path = tmp_path / f"bad{n}.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(str(path), None)
        message = str(err.value)
        assert "\n" not in message.strip() and 10 < len(message) < 400, message
    # The real command, on a sample of them: exit 2, one line on stderr, nothing on stdout.
    for n in range(0, 100, 20):
        r = subprocess.run([sys.executable, "-m", "common.cli", "check-config",
                            str(tmp_path / f"bad{n}.toml")], capture_output=True, text=True,
                           timeout=30, check=False, env={**os.environ, "PISENTRY_HOME": str(tmp_path)})
        assert r.returncode == 2, r
        assert len(r.stderr.strip().splitlines()) == 1 and not r.stdout, r.stderr


def test_each_service_loads_only_the_heavy_libraries_it_needs(system: System) -> None:
    """The footprint a Pi Zero can afford: OpenCV and NumPy only where pixels are
    processed, PyAV only where h264 is, pydantic only in web (its API models);
    the others validate their config in a child process (common.config_view)."""
    loaded = {s: mapped_libraries(system.pipe.service_pid(s)) for s in system.raw["general"][
        "services"]}
    assert loaded == {
        "capture": {"av", "cv2", "numpy"},
        "detect": {"cv2", "numpy"},
        "record": {"av"},
        "notify": {"paramiko/cryptography"},
        "ir": set(),
        "web": {"pydantic"},  # nobody is watching, so no OpenCV, NumPy or PyAV yet
    }


def test_ipc_endpoints_are_private(system: System) -> None:
    run = system.home.run_dir
    socks = list(run.glob("*.sock"))
    assert len(socks) >= 8, socks
    for folder in {s.parent for s in socks}:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_tcp_endpoints_refuse_peers_without_the_curve_key(tmp_path: Path) -> None:
    public, secret = (k.decode() for k in zmq.curve_keypair())
    port = __import__("tests.notify.peers", fromlist=["free_port"]).free_port()
    config = parse_config({"bus": {"endpoints": {"detect": f"tcp://127.0.0.1:{port}"},
                                   "curve": {"public_key": public, "secret_key": secret}}})
    from common.paths import Home
    home = Home(tmp_path / "h").ensure()
    bus = Bus(config, home)
    ctx = zmq.Context()
    try:
        pub = bus.publisher("detect")
        good = bus.subscriber(["detect"], [b""])
        plain = ctx.socket(zmq.SUB)  # no CURVE at all
        plain.setsockopt(zmq.SUBSCRIBE, b"")
        plain.connect(f"tcp://127.0.0.1:{port}")
        wrong = ctx.socket(zmq.SUB)  # CURVE, but not this server's key
        wrong.curve_serverkey = zmq.curve_keypair()[0]
        wrong.curve_publickey, wrong.curve_secretkey = zmq.curve_keypair()
        wrong.setsockopt(zmq.SUBSCRIBE, b"")
        wrong.connect(f"tcp://127.0.0.1:{port}")
        got = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not got:
            pub.publish(Heartbeat, ts=time.time(), service="detect", pid=1, started=0.0,
                        status="ok")
            got = good.recv(0.1)
        assert got, "the keyed subscriber got nothing"
        for _ in range(10):
            pub.publish(Heartbeat, ts=time.time(), service="detect", pid=1, started=0.0,
                        status="ok")
            time.sleep(0.05)
        assert not plain.poll(300) and not wrong.poll(300)
        plain.close(0)
        wrong.close(0)
    finally:
        bus.close()
        ctx.term()


def test_no_secret_in_logs_or_check_config(system: System) -> None:
    logs = [p for p in system.home.log_dir.rglob("*") if p.is_file()] + [system.pipe.log]
    assert len(logs) >= 6
    for path in logs:
        text = path.read_text(errors="replace")
        for what, secret in SECRETS.items():
            assert secret not in text, f"the {what} is in {path.name}"
    r = pisentry("check-config", str(system.pipe.config_path), home=system.home)
    assert r.returncode == 0, r.stderr
    env = {"PISENTRY_TELEGRAM_TOKEN": SECRETS["telegram token"] + "env",
           "PISENTRY_WEB_API_KEY": SECRETS["web api key"] + "env"}
    r2 = pisentry("check-config", str(system.pipe.config_path), home=system.home, env=env)
    for out in (r.stdout + r.stderr, r2.stdout + r2.stderr):
        for what, secret in SECRETS.items():
            assert secret not in out, f"check-config prints the {what}"
