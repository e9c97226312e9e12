"""`pisentry ir` as a real process: stays light (no OpenCV, no NumPy), survives
its device being unplugged, and runs the built-in simulator with serial_port = "sim"."""

import re
import subprocess
import sys
import threading
import time

import zmq

from common.bus import Bus
from common.config import parse_config
from common.messages import Brightness, Heartbeat
from common.worker import Worker
from services.ir.simulator import SimulatedDevice
from tests.support import write_config

REPO_CMD = [sys.executable, "-X", "importtime", "-m", "common.cli", "ir"]


class _Neighbour(Worker):
    """Another service on the same bus, to show it is not disturbed."""

    name = "record"


def _collect(sub, until, timeout):
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += [m.header for m in sub.recv(0.1)]
        if until(got):
            return got
    raise AssertionError(f"timed out; last messages {got[-3:]}")


def _start(home, raw):
    path, _ = write_config(home, raw, "ir.toml")
    env = {"PISENTRY_HOME": str(home.root), "PATH": "/usr/bin:/bin"}
    log = (home.root / "ir.err").open("w")
    proc = subprocess.Popen([*REPO_CMD, "--config", str(path)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    return proc, log


def _stop(proc, log):
    proc.terminate()
    code = proc.wait(10)
    log.close()
    return code


def _imported(home):
    """Top-level packages the process imported, from its -X importtime log."""
    text = (home.root / "ir.err").read_text()
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([A-Za-z0-9_]+)", text, re.MULTILINE))


def test_pisentry_ir_process_stays_light_and_survives_unplugging(home):
    device = SimulatedDevice(home.run_dir / "usb.tty", brightness=0.5)
    device.plug()
    raw = {"ir": {"serial_port": str(device.link_path), "updates_per_sec": 10,
                  "serial_timeout": 0.3, "reconnect_max_seconds": 0.5}}
    config = parse_config(raw)
    neighbour = _Neighbour(config, home)
    neighbour_thread = threading.Thread(target=neighbour.run, daemon=True)
    neighbour_thread.start()
    bus = Bus(config, home, context=zmq.Context())
    sub = bus.subscriber(["ir", "record"], [Brightness.TOPIC, Heartbeat.TOPIC])
    proc, log = _start(home, raw)
    try:
        _collect(sub, lambda g: any(isinstance(h, Brightness) and h.connected for h in g), 15)
        device.unplug()
        got = _collect(sub, lambda g: any(
            isinstance(h, Heartbeat) and h.service == "ir" and h.counters.get("connected") is
            False for h in g), 5)
        time.sleep(1.0)
        device.plug()
        got += _collect(sub, lambda g: any(
            isinstance(h, Heartbeat) and h.service == "ir" and h.counters.get("connects") == 2
            for h in g), 10)
        assert proc.poll() is None  # never exited for a missing device
        ir_pids = {h.pid for h in got if isinstance(h, Heartbeat) and h.service == "ir"}
        assert ir_pids == {proc.pid}
        record = [h for h in got if isinstance(h, Heartbeat) and h.service == "record"]
        assert len(record) >= 2 and all(h.status == "ok" for h in record)
        assert all(b - a == 1 for a, b in zip([h.seq for h in record], [h.seq for h in record][1:]))
    finally:
        code = _stop(proc, log)
        neighbour.request_stop()
        neighbour_thread.join(5)
        bus.close()
        device.close()
    assert code == 0
    modules = _imported(home)
    assert "serial" in modules and "zmq" in modules  # the log parsing works
    assert not modules & {"numpy", "cv2", "av"}, sorted(modules & {"numpy", "cv2", "av"})


def test_sim_port_runs_the_built_in_simulator(home):
    raw = {"ir": {"serial_port": "sim", "updates_per_sec": 10}}
    config = parse_config(raw)
    bus = Bus(config, home, context=zmq.Context())
    sub = bus.subscriber(["ir"], [Brightness.TOPIC])
    proc, log = _start(home, raw)
    try:
        got = _collect(sub, lambda g: sum(h.connected for h in g) >= 5, 15)
        assert all(0.0 <= h.level <= 1.0 for h in got)
    finally:
        code = _stop(proc, log)
        bus.close()
    assert code == 0
    assert not (home.run_dir / "ir-sim.tty").exists()  # the simulated pty is gone with it
