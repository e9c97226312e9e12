"""The supervisord client against a real `pisentry run`: states, the FATAL
reason in the service's own words, restarts by name."""

from __future__ import annotations

import socket
import time

import pytest

from common.supervisor_client import (
    FATAL,
    RUNNING,
    SupervisorClient,
    SupervisorError,
    SupervisorUnavailable,
    reason_from_log,
)
from tests.notify.peers import free_port
from tests.support import running_pipeline

pytestmark = pytest.mark.slow


def _wait_state(sup: SupervisorClient, name: str, state: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sup.process(name, reasons=False).state == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} not {state} after {timeout} s: {sup.process(name)}")


def test_states_fatal_reason_and_restart():
    port = free_port()
    squatter = socket.create_server(("127.0.0.1", port))  # another program on the web port
    raw = {"general": {"services": ["capture", "web"]}, "web": {"port": port}}
    try:
        with running_pipeline(raw) as pipeline:
            deadline = time.monotonic() + 15
            while not (pipeline.home.run_dir / "supervisor.sock").exists():
                assert time.monotonic() < deadline, pipeline.output()
                time.sleep(0.1)
            with SupervisorClient.for_home(pipeline.home) as sup:
                assert sup.state() == "RUNNING"
                assert sup.pid() > 0
                _wait_state(sup, "capture", RUNNING, 15)
                _wait_state(sup, "web", FATAL, 40)
                by_name = {p.name: p for p in sup.processes()}
                assert set(by_name) == {"capture", "web"}
                assert by_name["capture"].running and by_name["capture"].pid > 0
                assert by_name["capture"].reason == ""
                web = by_name["web"]
                assert web.fatal and web.pid == 0
                assert web.reason == (f"127.0.0.1:{port} is in use by another program; "
                                      "set web.port")

                old = by_name["capture"].pid
                [capture] = sup.restart("capture")
                assert capture.running and capture.pid not in (0, old)

                squatter.close()  # the port is free now: a restart brings web up
                [web] = sup.restart("web")
                assert web.running, web

                with pytest.raises(SupervisorError):
                    sup.restart("no-such-service")
    finally:
        squatter.close()


def test_no_supervisord_is_unavailable_not_a_hang(home):
    home.run_dir.joinpath("supervisor.sock").touch()  # a stale file, nobody listening
    started = time.monotonic()
    with SupervisorClient.for_home(home, timeout=2) as sup, pytest.raises(SupervisorUnavailable):
        sup.processes()
    assert time.monotonic() - started < 2


def test_reason_is_the_setup_error_else_the_last_line():
    log = ("2026-12-02 10:00:00,000 INFO common.worker[7]: web starting\n"
           "2026-12-02 10:00:00,100 ERROR common.worker[7]: web cannot start: 127.0.0.1:80 "
           "is in use by another program; set web.port\n"
           "2026-12-02 10:00:00,200 INFO common.bus[7]: closed\n")
    assert reason_from_log(log, "web") == "127.0.0.1:80 is in use by another program; set web.port"
    assert reason_from_log("pisentry: config error: capture.fps: must be > 0\n", "capture") == (
        "config error: capture.fps: must be > 0")
    assert reason_from_log("Traceback (most recent call last):\n  ...\n"
                           "ModuleNotFoundError: No module named 'cv2'\n", "detect") == (
        "ModuleNotFoundError: No module named 'cv2'")
    assert reason_from_log("", "web") == ""
