"""A typed client for the supervisord that ``pisentry run`` starts: process
states, why a service went FATAL, restarting named services.

It speaks supervisord's own XML-RPC interface on the unix socket in
``$PISENTRY_HOME/run`` through supervisor's own transport, authenticated with
the credentials ``pisentry run`` writes into the ``[supervisorctl]`` section of
the generated config (so ``supervisorctl -c $PISENTRY_HOME/run/supervisord.conf``
works the same way). Every call is bounded by a timeout: a stopped or wedged
supervisord is an error here, never a hang.

    with SupervisorClient.for_home(home) as sup:
        for p in sup.processes():
            print(p.name, p.state, p.reason)
        sup.restart("detect", "record")
"""

from __future__ import annotations

import configparser
import http.client
import socket
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from supervisor.xmlrpc import Faults, SupervisorTransport

from common.paths import Home

SOCKET_NAME = "supervisor.sock"
CONF_NAME = "supervisord.conf"

# supervisord's process states (supervisor.states.ProcessStates), by name.
STOPPED, STARTING, RUNNING, BACKOFF = "STOPPED", "STARTING", "RUNNING", "BACKOFF"
STOPPING, EXITED, FATAL, UNKNOWN = "STOPPING", "EXITED", "FATAL", "UNKNOWN"
# How a service says its setup failed (common.worker, a config error): supervisord
# does not restart it, so the client reports it as FATAL, as it does one that
# failed before supervisord counted it as started.
SETUP_ERROR_EXIT = 2
# A service in one of these did not come up (or stopped on its own): its reason is looked up.
DOWN_STATES = frozenset({BACKOFF, EXITED, FATAL})

# How much of a program's log tail is searched for its reason.
TAIL_BYTES = 8192
# What the worker logs when its setup fails (common.worker); the text after it is the reason.
SETUP_FAILED = " cannot start: "
# What a service prints when its config does not validate (common.cli.load_from_args):
# a config edited while the system runs fails the next restart of a service this way.
CONFIG_FAILED = "pisentry: config error: "


class SupervisorUnavailable(ConnectionError):
    """No supervisord answers on this home's socket (not running, or not ours)."""


class SupervisorError(RuntimeError):
    """supervisord refused a call (an unknown service name, a failed start ...)."""

    def __init__(self, fault: xmlrpc.client.Fault) -> None:
        super().__init__(fault.faultString)
        self.code = fault.faultCode


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    state: str          # supervisord's state name; FATAL also for an exit on a setup error
    pid: int            # 0 when not running
    started: float      # epoch seconds of the last start, 0 if never
    stopped: float      # epoch seconds of the last stop, 0 if never
    exitstatus: int
    description: str    # supervisord's own summary ("pid 12, uptime 0:01:02", "Exited too quickly")
    logfile: str
    reason: str = ""    # for a service that is down: its own one-line error, else ""

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def fatal(self) -> bool:
        return self.state == FATAL


def reason_from_log(tail: str, name: str) -> str:
    """The one line that says why ``name`` could not start: the worker's
    setup error if it logged one, else the last line it wrote (a traceback's
    last line, a config error), without the logging prefix."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    marker = f"{name}{SETUP_FAILED}"
    for line in reversed(lines):
        if marker in line:
            return line.split(marker, 1)[1]
    if not lines:
        return ""
    last = lines[-1]
    if "]: " in last:  # "2026-... ERROR module[pid]: message"
        last = last.split("]: ", 1)[1]
    return last.removeprefix("pisentry: ")


class _UnixConnection(http.client.HTTPConnection):
    """supervisor's UnixStreamHTTPConnection connects without a timeout; this
    one applies the connection's timeout to the connect as well."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class _Transport(SupervisorTransport):
    def __init__(self, path: Path, username: str | None, password: str | None,
                 timeout: float) -> None:
        super().__init__(username, password, f"unix://{path}")
        self._get_connection = lambda: _UnixConnection(str(path), timeout)


def credentials(conf: Path) -> tuple[str | None, str | None]:
    """The user name and password of the ``[supervisorctl]`` section, if any."""
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(conf.read_text())
    except (OSError, configparser.Error):
        return None, None
    if not parser.has_section("supervisorctl"):
        return None, None
    return (parser.get("supervisorctl", "username", fallback=None),
            parser.get("supervisorctl", "password", fallback=None))


class SupervisorClient:
    def __init__(self, socket_path: Path, username: str | None = None,
                 password: str | None = None, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self._transport = _Transport(socket_path, username, password, timeout)
        # The host part is ignored: the transport always talks to the socket.
        proxy = xmlrpc.client.ServerProxy("http://localhost", transport=self._transport)
        self._rpc: Any = proxy.supervisor

    @classmethod
    def for_home(cls, home: Home, timeout: float = 5.0) -> SupervisorClient:
        username, password = credentials(home.run_dir / CONF_NAME)
        return cls(home.run_dir / SOCKET_NAME, username, password, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._rpc, method)(*args)
        except xmlrpc.client.Fault as fault:
            raise SupervisorError(fault) from None
        except xmlrpc.client.ProtocolError as exc:
            self._transport.close()
            raise SupervisorUnavailable(f"{self.socket_path}: {exc.errcode} {exc.errmsg}"
                                        ) from None
        except (OSError, http.client.HTTPException) as exc:
            self._transport.close()  # the next call reconnects
            raise SupervisorUnavailable(f"{self.socket_path}: {exc}") from None

    # -- supervisord itself ------------------------------------------------------
    def state(self) -> str:
        """supervisord's own state: RUNNING, RESTARTING, SHUTDOWN ..."""
        return str(self._call("getState")["statename"])

    def pid(self) -> int:
        return int(self._call("getPID"))

    def shutdown(self) -> None:
        """Stop every service, then supervisord itself (returns at once)."""
        self._call("shutdown")

    # -- services ------------------------------------------------------------------
    def processes(self, reasons: bool = True) -> list[ProcessInfo]:
        """Every service supervisord knows, in its order; with ``reasons``,
        a service that is down carries its own one-line error."""
        return [self._info(raw, reasons) for raw in self._call("getAllProcessInfo")]

    def process(self, name: str, reasons: bool = True) -> ProcessInfo:
        return self._info(self._call("getProcessInfo", name), reasons)

    def reason(self, name: str) -> str:
        """Why ``name`` is down, in its own words (its log's last setup error
        or last line), or supervisord's when it could not even be spawned."""
        raw = self._call("getProcessInfo", name)
        tail = self._call("tailProcessStdoutLog", name, 0, TAIL_BYTES)[0]
        # A setup error that ends the process before startsecs also sets
        # spawnerr ("Exited too quickly"): the service's own line says more.
        said = f"{name}{SETUP_FAILED}" in tail or CONFIG_FAILED in tail
        if raw["spawnerr"] and not said:
            return str(raw["spawnerr"])
        return reason_from_log(tail, name) or str(raw["description"])

    def restart(self, *names: str, wait: bool = True) -> list[ProcessInfo]:
        """Stop (if running) and start each named service, in the order given.
        With ``wait``, each start returns once supervisord counts it as up
        (startsecs) or gave up on it; a service that fails to come up is
        reported in the result (state and reason), not raised. A service
        restarting itself must pass ``wait=False``: its own stop ends the call."""
        for name in names:
            self.stop(name, wait=wait)
            self.start(name, wait=wait)
        return [self.process(name) for name in names]

    def stop(self, *names: str, wait: bool = True) -> None:
        """Stop each named service; one already stopped is no error."""
        for name in names:
            try:
                self._call("stopProcess", name, wait)
            except SupervisorError as exc:
                if exc.code != Faults.NOT_RUNNING:
                    raise

    def start(self, *names: str, wait: bool = True) -> list[ProcessInfo]:
        """Start each named service (a FATAL one too); as ``restart``, a
        failure to come up is in the result, not raised."""
        for name in names:
            try:
                self._call("startProcess", name, wait)
            except SupervisorError as exc:
                if exc.code not in (Faults.SPAWN_ERROR, Faults.ABNORMAL_TERMINATION,
                                    Faults.ALREADY_STARTED):
                    raise
        return [self.process(name) for name in names]

    def _info(self, raw: dict[str, Any], reasons: bool) -> ProcessInfo:
        state = str(raw["statename"])
        if state == EXITED and raw["exitstatus"] == SETUP_ERROR_EXIT:
            state = FATAL
        reason = self.reason(raw["name"]) if reasons and state in DOWN_STATES else ""
        return ProcessInfo(name=str(raw["name"]), state=state, pid=int(raw["pid"]),
                           started=float(raw["start"]), stopped=float(raw["stop"]),
                           exitstatus=int(raw["exitstatus"]),
                           description=str(raw["description"]),
                           logfile=str(raw["stdout_logfile"]), reason=reason)


def supervised_states(home: Home, timeout: float = 2.0) -> dict[str, tuple[str, str]]:
    """service -> (state, reason when down) from this home's supervisord;
    empty when none answers (services started some other way, or stopping)."""
    try:
        with SupervisorClient.for_home(home, timeout=timeout) as sup:
            return {p.name: (p.state, p.reason) for p in sup.processes()}
    except (SupervisorUnavailable, SupervisorError):
        return {}
