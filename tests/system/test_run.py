"""`pisentry run` as a user meets it: a terminal that goes away, a supervisord
that dies, a second start on the same home, a port another program holds, and
two instances on one machine. Real processes under a real supervisord."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from common import run_view
from common.paths import Home
from common.supervisor_client import RUNNING, SupervisorClient
from tests.notify.peers import free_port
from tests.support import new_home, pisentry, write_config
from tests.system.harness import API_HEADERS

pytestmark = pytest.mark.slow

SERVICES = ["capture", "detect", "record", "notify", "ir", "web"]


def instance_config(web_port: int, services: list[str] = SERVICES, **sections: Any
                    ) -> dict[str, Any]:
    return {"general": {"services": services},
            "capture": {"source": "synthetic", "width": 320, "height": 240, "fps": 10},
            "ir": {"enabled": True, "serial_port": "sim"},
            "web": {"port": web_port, "api_key": API_HEADERS["X-API-Key"]}, **sections}


def _hangup_as_in_a_terminal() -> None:
    """A test run started under nohup would hand its ignored SIGHUP down, and
    ``pisentry run`` deliberately leaves an ignored SIGHUP alone; a shell in a
    terminal starts it with SIGHUP at its default. A handled signal is reset
    to the default by exec, so handling it here (doing nothing) gives the
    child the default without a preexec_fn."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, lambda *_: None)


class Run:
    """One `pisentry run` with its stdout and stderr on pipes this test reads
    (or closes, as a terminal that goes away)."""

    def __init__(self, home: Home, config: Path) -> None:
        self.home, self.config = home, config
        env = {**os.environ, "PISENTRY_HOME": str(home.root)}
        _hangup_as_in_a_terminal()
        self.proc = subprocess.Popen([sys.executable, "-m", "common.cli", "run", "--config",
                                      str(config)], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        return pisentry("status", "--config", str(self.config), *args, home=self.home)

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logs()
            if self.status().returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"not healthy after {timeout} s\n{self.logs()}")

    def supervisord(self) -> psutil.Process:
        [child] = psutil.Process(self.proc.pid).children()
        return child

    def service_pids(self) -> dict[str, int]:
        with SupervisorClient.for_home(self.home) as sup:
            return {p.name: p.pid for p in sup.processes(reasons=False) if p.state == RUNNING}

    def tree(self) -> list[int]:
        """Every live process of this instance: pisentry run and all below it."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def logs(self) -> str:
        text = ""
        for log in sorted(self.home.log_dir.glob("*.log")):
            text += f"\n--- {log.name} ---\n" + log.read_text()[-2000:]
        return text[-10000:]

    def kill(self) -> None:
        for pid in self.tree()[::-1]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_gone(pids: list[int], timeout: float) -> float:
    """Seconds until none of ``pids`` runs; fails naming the survivors."""
    started = time.monotonic()
    while _alive(pids):
        if time.monotonic() - started > timeout:
            left = {p: " ".join(psutil.Process(p).cmdline()) for p in _alive(pids)}
            raise AssertionError(f"still running after {timeout} s: {left}")
        time.sleep(0.05)
    return time.monotonic() - started


@contextmanager
def started(services: list[str] = SERVICES, home: Home | None = None,
            web_port: int | None = None, **sections: Any) -> Iterator[Run]:
    own_home = home is None
    home = home or new_home()
    config = write_config(home, instance_config(web_port or free_port(), services,
                                                **sections))[0]
    run = Run(home, config)
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.kill()
        if own_home:
            shutil.rmtree(home.root, ignore_errors=True)


def test_a_terminal_that_goes_away_stops_nothing_and_leaves_no_orphan():
    """The reproduction: stdout on a pipe whose reader quits. supervisord and
    every service keep running, supervised (a service killed is restarted);
    SIGHUP, what a closing terminal sends, then stops the whole tree."""
    with started() as run:
        run.wait_healthy()
        time.sleep(2)
        before = run.service_pids()
        assert set(before) == set(SERVICES)
        run.proc.stdout.close()  # type: ignore[union-attr]
        run.proc.stderr.close()  # type: ignore[union-attr]
        time.sleep(10)
        assert run.proc.poll() is None, run.logs()
        assert run.supervisord().is_running()
        assert run.service_pids() == before  # none of them died meanwhile
        os.kill(before["detect"], signal.SIGKILL)  # still supervised: restarted
        run.wait_healthy(timeout=20)
        assert run.service_pids()["detect"] != before["detect"]

        tree = run.tree()
        run.proc.send_signal(signal.SIGHUP)
        took = wait_gone(tree, timeout=10)
        assert run.proc.wait(1) == 0
        log = (run.home.log_dir / "supervisord.log").read_text()
        assert "CRIT" not in log  # nothing to warn about on start, nor on the way down
        print(f"stopped on SIGHUP in {took:.2f} s")


def test_supervisord_killed_leaves_no_service_running():
    with started() as run:
        run.wait_healthy()
        tree = run.tree()
        supervisord = run.supervisord()
        supervisord.kill()
        took = wait_gone(tree, timeout=5)  # pisentry run and every service
        assert run.proc.wait(2) == 1
        err = run.proc.stderr.read().decode()  # type: ignore[union-attr]
        assert "supervisord was killed by signal 9" in err
        print(f"all gone {took:.2f} s after kill -9 of supervisord")


def test_pisentry_run_killed_stops_everything_below_it():
    with started() as run:
        run.wait_healthy()
        tree = run.tree()
        run.proc.kill()
        took = wait_gone(tree, timeout=12)  # supervisord's clean stop (drains included)
        print(f"all gone {took:.2f} s after kill -9 of pisentry run")


def test_a_second_run_on_the_same_home_exits_1_and_the_first_runs_on():
    with started() as first:
        first.wait_healthy()
        before = first.service_pids()
        second = pisentry("run", "--config", str(first.config), home=first.home, timeout=30)
        assert second.returncode == 1
        assert (f"pisentry is already running in {first.home.root} (pid {first.proc.pid})"
                in second.stderr)
        assert first.service_pids() == before
        assert first.status().returncode == 0
        assert (first.home.run_dir / "supervisor.sock").exists()  # not cleaned from under it


def test_stale_sockets_of_a_dead_instance_are_cleared_and_a_live_one_is_refused():
    home = new_home()
    port = free_port()
    try:
        with started(["capture", "web"], home=home, web_port=port) as run:
            run.wait_healthy()
            run.kill()  # everything at once, as a power cut would: sockets stay behind
        left = sorted(p.name for p in home.run_dir.glob("*.sock"))
        assert "capture.sock" in left and "supervisor.sock" in left

        squatter = socket.socket(socket.AF_UNIX)  # a process that outlived its instance
        squatter.bind(str(home.run_dir / "detect.sock"))
        squatter.listen()
        try:
            refused = pisentry("run", "--config", str(home.root / "config.toml"), home=home)
            assert refused.returncode == 1
            assert (f"{home.run_dir / 'detect.sock'} is in use by pid {os.getpid()}"
                    in refused.stderr)
        finally:
            squatter.close()

        with started(["capture", "web"], home=home, web_port=port) as again:
            again.wait_healthy()
    finally:
        shutil.rmtree(home.root, ignore_errors=True)


def test_a_taken_web_port_is_fatal_on_the_terminal_and_in_status():
    port = free_port()
    squatter = socket.create_server(("127.0.0.1", port))
    try:
        with started(["capture", "web"], web_port=port) as run:
            expected = f"FATAL web: 127.0.0.1:{port} is in use by another program; set web.port"
            deadline = time.monotonic() + 60
            line = b""
            while expected.encode() not in line:
                assert time.monotonic() < deadline, run.logs()
                line = run.proc.stderr.readline()  # type: ignore[union-attr]
                assert line or run.proc.poll() is None, run.logs()
            status = run.status()
            assert status.returncode == 1
            web = next(row for row in status.stdout.splitlines() if row.startswith("web"))
            assert "FATAL" in web
            assert f"127.0.0.1:{port} is in use by another program; set web.port" in web
            assert run.proc.poll() is None  # the rest runs on
    finally:
        squatter.close()


def test_two_instances_on_one_machine_with_their_own_ports():
    with started(["capture", "detect", "web"]) as one, started(["capture", "detect", "web"]) as two:
        one.wait_healthy()
        two.wait_healthy()
        assert set(one.service_pids().values()).isdisjoint(two.service_pids().values())


def test_the_health_page_shows_a_fatal_service_with_its_reason():
    port = free_port()
    missing = "/nonexistent/known_hosts"  # valid config, but the file is not there
    broken = {"notify": {"backup": {"enabled": True, "host": "127.0.0.1",
                                    "known_hosts": missing}}}
    reason = f"notify.backup.known_hosts: {missing} does not exist"
    with started(["capture", "notify", "web"], web_port=port, **broken) as run:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, run.logs()
            try:
                rows = httpx.get(f"http://127.0.0.1:{port}/api/status", headers=API_HEADERS,
                                 timeout=3).json()["services"]
            except (httpx.HTTPError, KeyError, ValueError):
                rows = {}
            notify = next((r for rs in rows.values() for r in rs if r["service"] == "notify"),
                          None)
            if notify and notify["status"] == "FATAL":
                break
            time.sleep(0.5)
        assert notify["alive"] is False and notify["reason"] == reason
        status = run.status("--json")
        assert status.returncode == 1
        [row] = [r for r in json.loads(status.stdout)["services"]
                 if r["service"] == "notify"]
        assert row["status"] == "FATAL" and row["reason"] == reason


def test_a_service_that_dies_after_the_start_and_cannot_come_back_is_fatal_on_the_terminal():
    """Once every service runs, ``pisentry run`` looks at supervisord seldom
    and waits on the services' exits instead: one killed then is still
    followed through its restarts to FATAL, said with its own reason."""
    with started(["capture", "detect"]) as run:
        run.wait_healthy()
        time.sleep(2)  # settled: the next look is many seconds away
        before = run.service_pids()
        # Its next start reads this and exits on the config error.
        run.config.write_text(run.config.read_text() + "\n[detect]\nworking_height = 1\n")
        os.kill(before["detect"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        line = b""
        while b"FATAL detect:" not in line:
            assert time.monotonic() < deadline, run.logs()
            line = run.proc.stderr.readline()  # type: ignore[union-attr]
            assert line or run.proc.poll() is None, run.logs()
        assert b"working_height" in line, line
        assert run.service_pids() == {"capture": before["capture"]}  # the rest runs on


def test_status_of_a_running_instance_needs_no_validation_until_its_config_file_changes():
    """``pisentry run`` keeps what status needs of the file it validated
    (common.run_view): status then loads no pydantic; a changed file is
    validated again, and a bad one is the same config error as before."""
    with started(["capture", "detect"]) as run:
        run.wait_healthy()
        assert (run.home.run_dir / run_view.FILE).exists()
        env = {**os.environ, "PISENTRY_HOME": str(run.home.root)}
        cheap = subprocess.run([sys.executable, "-X", "importtime", "-m", "common.cli", "status",
                                "--config", str(run.config)], env=env, capture_output=True,
                               text=True, timeout=30, check=False)
        assert cheap.returncode == 0, cheap.stdout + cheap.stderr[-2000:]
        assert "capture" in cheap.stdout and "detect" in cheap.stdout
        assert "pydantic" not in cheap.stderr  # -X importtime lists every module imported
        run.config.write_text(run.config.read_text() + "\n[detect]\nworking_height = 1\n")
        changed = run.status()
        assert changed.returncode == 2, changed.stdout + changed.stderr
        assert "config error" in changed.stderr and "working_height" in changed.stderr
