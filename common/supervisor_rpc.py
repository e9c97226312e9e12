"""A small typed client of supervisord's own XML-RPC interface
(``supervisor.rpcinterface``) on the unix socket ``pisentry run`` configures
(``$PISENTRY_HOME/run/supervisor.sock``): process states, stop and start, and
the tail of a program's log. Services are restarted by asking supervisord,
never by signalling pids found some other way.

``python -m common.supervisor_rpc restart NAME...`` does the same from a
separate process: the web service uses it to restart itself, which it cannot
do over a connection that ends when supervisord stops it.
"""

from __future__ import annotations

import sys
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from common.paths import Home

# supervisord's process states (supervisor.states.ProcessStates)
RUNNING = "RUNNING"
STARTING = "STARTING"
FAILED_STATES = frozenset({"BACKOFF", "EXITED", "FATAL", "UNKNOWN"})


class SupervisorError(RuntimeError):
    """supervisord is not reachable, or refused a request."""


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    state: str  # RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL, ...
    pid: int  # 0 when not running
    exitstatus: int
    description: str


class Supervisor:
    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    @classmethod
    def of(cls, home: Home) -> Supervisor:
        return cls(home.run_dir / "supervisor.sock")

    def _proxy(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        transport.timeout = self.timeout  # type: ignore[attr-defined]
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def _call(self, method: str, *args: Any) -> Any:
        try:
            target = self._proxy()
            for part in method.split("."):
                target = getattr(target, part)
            return target(*args)
        except xmlrpc.client.Fault as exc:
            raise SupervisorError(f"supervisord refused {method}{args}: "
                                  f"{exc.faultString}") from None
        except OSError as exc:
            raise SupervisorError(f"supervisord is not reachable at {self.socket_path}: "
                                  f"{exc}") from None

    def processes(self) -> dict[str, ProcessInfo]:
        return {p.name: p for p in map(_info, self._call("supervisor.getAllProcessInfo"))}

    def process(self, name: str) -> ProcessInfo:
        return _info(self._call("supervisor.getProcessInfo", name))

    def stop(self, name: str) -> None:
        """Stop ``name`` and wait until it is gone; a stopped one is left alone."""
        if self.process(name).state in (RUNNING, STARTING, "BACKOFF"):
            try:
                self._call("supervisor.stopProcess", name, True)
            except SupervisorError as exc:
                if "NOT_RUNNING" not in str(exc):  # it ended on its own meanwhile
                    raise

    def start(self, name: str) -> None:
        """Start ``name`` without waiting for startsecs: the caller watches it."""
        self._call("supervisor.startProcess", name, False)

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def log_tail(self, name: str, length: int = 4000) -> str:
        data, _, _ = self._call("supervisor.tailProcessStdoutLog", name, 0, length)
        return cast(str, data)


def _info(raw: dict[str, Any]) -> ProcessInfo:
    return ProcessInfo(raw["name"], raw["statename"], int(raw["pid"]), int(raw["exitstatus"]),
                       raw["description"])


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "restart":
        print("usage: python -m common.supervisor_rpc restart NAME...", file=sys.stderr)
        return 64
    supervisor = Supervisor.of(Home.from_env())
    try:
        for name in argv[1:]:
            supervisor.restart(name)
    except SupervisorError as exc:
        print(f"pisentry: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
