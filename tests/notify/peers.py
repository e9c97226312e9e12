"""Real servers on loopback for the notify tests (and later system tests).

- ``SshServer``: OpenSSH sshd on a free high port, pubkey login only, its own
  host key; ``stop()``/``start()`` simulate a NAS outage.
- ``Mosquitto``: the Debian broker with one listener on 127.0.0.1 (optionally TLS).
- ``SmtpSink``: aiosmtpd Controller keeping every message (optionally TLS).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from email import message_from_bytes
from email.message import Message
from pathlib import Path

SSHD = "/usr/sbin/sshd"
MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, up: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not go {'up' if up else 'down'} in {timeout} s")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first-level first)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)


class SshServer:
    """sshd as root on 127.0.0.1:port; files land under ``root`` (absolute paths)."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.port = free_port()
        self.root = self.dir / "nas"
        self.root.mkdir(exist_ok=True)
        self.host_key = self.dir / "host_key"
        self.client_key = self.dir / "client_key"
        keygen(self.host_key)
        keygen(self.client_key)
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        os.chmod(self.dir / "authorized_keys", 0o600)
        self.known_hosts = self.dir / "known_hosts"
        host_pub = (self.dir / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self.config = self.dir / "sshd_config"
        self.config.write_text(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.dir}/sshd.pid
AuthorizedKeysFile {self.dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 50
Subsystem sftp internal-sftp
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SshServer:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        with open(self.dir / "sshd.log", "ab") as log:  # the child keeps its own fd
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            # Kill the listener and every session it forked: a real outage.
            doomed = [self.proc.pid, *descendants(self.proc.pid)]
            for pid in reversed(doomed):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(5)
            self.proc = None
            wait_port(self.port, up=False)

    def wrong_known_hosts(self) -> Path:
        other = self.dir / "other_host_key"
        keygen(other)
        pub = (self.dir / "other_host_key.pub").read_text().split()
        path = self.dir / "known_hosts_wrong"
        path.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        return path

    def files(self) -> dict[str, bytes]:
        """Relative path -> content of every file under ``root``."""
        return {str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()}


class Mosquitto:
    """``tls``: (certificate, key) PEM files; the listener then speaks TLS only."""

    def __init__(self, folder: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        certs = f"certfile {tls[0]}\nkeyfile {tls[1]}\n" if tls else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{certs}allow_anonymous true\n"
                             "persistence false\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        with open(self.dir / "mosquitto.log", "ab") as log:  # the child keeps its own fd
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


class SmtpSink:
    """aiosmtpd on a free port; ``messages`` holds what arrived."""

    def __init__(self, tls_context: object | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object
                                  ) -> str:
                sink.messages.append(message_from_bytes(envelope.content))  # type: ignore
                return "250 OK"

        kwargs: dict[str, object] = {}
        if tls_context is not None:
            kwargs = {"tls_context": tls_context, "require_starttls": True}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait(self, n: int = 1, timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < n:
            time.sleep(0.02)
        assert len(self.messages) >= n, f"{n} mail(s) expected, got {len(self.messages)}"
        return self.messages


def have(binary: str) -> bool:
    return Path(binary).exists() or shutil.which(binary) is not None
