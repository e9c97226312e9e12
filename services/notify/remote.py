"""The NAS end of backups: SFTP or SCP over paramiko, host key checked.

Both stores offer the same few operations, so the backup logic never knows
which protocol it speaks. The host key must be in ``known_hosts``: an unknown
or changed key is refused (``HostKeyError``), never learned, because a backup
that goes to whoever answers on the NAS address is a leak, not a backup.

SCP has no file operations of its own, so ``ScpStore`` runs ``mkdir -p``,
``mv``, ``stat``, ``ls`` and ``rm`` over the same SSH connection (arguments
shell-quoted) and speaks the classic ``scp -t`` sink protocol for the data;
that covers NAS boxes whose SSH server has no SFTP subsystem.

Threading: a store belongs to the backup thread that connected it.
"""

from __future__ import annotations

import logging
import posixpath
import shlex
import socket
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Protocol

import paramiko

if TYPE_CHECKING:
    from common.config import BackupConfig

log = logging.getLogger(__name__)

COPY_CHUNK = 1 << 20  # big writes: paramiko pipelines them; 32 KiB writes ran 30% slower


class RemoteError(RuntimeError):
    """The NAS cannot be reached or refused an operation; retried with back-off."""


class HostKeyError(RemoteError):
    """The NAS's host key is unknown or changed: refused."""


class Throttle:
    """Sleeps so that bytes passed to ``add`` stay under ``kbps`` KB/s (0: no cap)."""

    def __init__(self, kbps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = kbps * 1024
        self.clock = clock
        self.start = clock()
        self.sent = 0

    def add(self, n: int) -> None:
        self.sent += n
        if self.rate <= 0:
            return
        ahead = self.sent / self.rate - (self.clock() - self.start)
        if ahead > 0:
            time.sleep(ahead)


class Writer(Protocol):
    def write(self, data: bytes) -> int: ...


class RemoteStore(Protocol):
    def size(self, path: str) -> int | None: ...
    def makedirs(self, path: str) -> None: ...
    def put(self, write: Callable[[Writer], int], size: int, path: str) -> int: ...
    def rename(self, src: str, dst: str) -> None: ...
    def remove(self, path: str) -> None: ...
    def listdir(self, path: str) -> list[str]: ...
    def rmdir(self, path: str) -> None: ...
    def close(self) -> None: ...


def ssh_connect(cfg: BackupConfig) -> paramiko.SSHClient:
    """An SSH connection to the NAS with its host key pinned; ``RemoteError`` else."""
    client = paramiko.SSHClient()
    where = f"{cfg.host}:{cfg.port}"
    try:
        client.load_host_keys(cfg.known_hosts)
    except OSError as exc:
        raise HostKeyError(f"cannot read known_hosts {cfg.known_hosts}: {exc.strerror}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(cfg.host, cfg.port, username=cfg.username or None,
                       key_filename=cfg.key_file or None, allow_agent=False,
                       look_for_keys=False, timeout=cfg.connect_timeout,
                       banner_timeout=cfg.connect_timeout, auth_timeout=cfg.connect_timeout)
    except paramiko.BadHostKeyException:
        client.close()
        raise HostKeyError(f"host key of {where} does not match {cfg.known_hosts}: refused "
                           "(was the NAS replaced, or is someone in between?)") from None
    except paramiko.AuthenticationException:
        client.close()
        raise RemoteError(f"{where} refused the login of {cfg.username!r} with "
                          f"{cfg.key_file or 'no key'}") from None
    except paramiko.SSHException as exc:
        client.close()
        if "known_hosts" in str(exc):
            raise HostKeyError(f"{where} is not in {cfg.known_hosts}: refused") from None
        raise RemoteError(f"ssh to {where}: {exc}") from None
    except (OSError, EOFError) as exc:
        client.close()
        raise RemoteError(f"cannot reach {where}: {exc}") from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(15)
        # Small request/response exchanges (stat, mkdir, channel opens) otherwise
        # wait out Nagle against delayed ACKs: 40 ms each on loopback.
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


class SftpStore:
    def __init__(self, client: paramiko.SSHClient) -> None:
        self.client = client
        try:
            self.sftp = client.open_sftp()
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise RemoteError(f"no SFTP on the NAS ({exc}); try protocol = \"scp\"") from None

    def size(self, path: str) -> int | None:
        try:
            return self.sftp.stat(path).st_size
        except FileNotFoundError:
            return None
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"stat {path}: {exc}") from None

    def makedirs(self, path: str) -> None:
        # paramiko has no makedirs; walk down, creating what is missing.
        try:
            self._makedirs(path)
        except RemoteError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise RemoteError(f"mkdir {path}: {exc}") from None

    def _makedirs(self, path: str) -> None:
        current = "/" if path.startswith("/") else ""
        for part in [p for p in path.split("/") if p]:
            current = posixpath.join(current, part) if current else part
            try:
                if stat.S_ISDIR(self.sftp.stat(current).st_mode or 0):
                    continue
                raise RemoteError(f"{current} exists and is not a folder")
            except FileNotFoundError:
                try:
                    self.sftp.mkdir(current)
                except OSError:
                    # Lost a race with another uploader, fine if it is a folder now.
                    if not stat.S_ISDIR(self.sftp.stat(current).st_mode or 0):
                        raise RemoteError(f"cannot create {current}") from None

    def put(self, write: Callable[[Writer], int], size: int, path: str) -> int:
        try:
            with self.sftp.open(path, "wb") as f:
                f.set_pipelined(True)
                return write(f)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise RemoteError(f"upload to {path}: {exc}") from None

    def rename(self, src: str, dst: str) -> None:
        try:
            self.sftp.posix_rename(src, dst)  # atomic, replaces dst (OpenSSH extension)
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"rename {src} -> {dst}: {exc}") from None

    def remove(self, path: str) -> None:
        try:
            self.sftp.remove(path)
        except FileNotFoundError:
            pass
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"remove {path}: {exc}") from None

    def listdir(self, path: str) -> list[str]:
        try:
            return self.sftp.listdir(path)
        except FileNotFoundError:
            return []
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"list {path}: {exc}") from None

    def rmdir(self, path: str) -> None:
        try:
            self.sftp.rmdir(path)
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"rmdir {path}: {exc}") from None

    def close(self) -> None:
        self.sftp.close()
        self.client.close()


class _ChannelWriter:
    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def write(self, data: bytes) -> int:
        self.channel.sendall(data)
        return len(data)


class ScpStore:
    def __init__(self, client: paramiko.SSHClient, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        # Each remote command costs a session (~80 ms with OpenSSH), so folders made
        # and sizes the scp sink has just confirmed are remembered.
        self._made: set[str] = set()
        self._confirmed: dict[str, int] = {}

    def _run(self, *argv: str, check: bool = True) -> tuple[int, str]:
        command = " ".join(shlex.quote(a) for a in argv)
        try:
            _, out, err = self.client.exec_command(command, timeout=self.timeout)
            text = out.read().decode(errors="replace")
            rc = out.channel.recv_exit_status()
            problem = err.read().decode(errors="replace").strip()
        except (TimeoutError, OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"{argv[0]} on the NAS: {exc}") from None
        if check and rc != 0:
            raise RemoteError(f"{argv[0]} on the NAS failed ({rc}): {problem[:200]}")
        return rc, text

    def size(self, path: str) -> int | None:
        if path in self._confirmed:
            return self._confirmed[path]
        rc, out = self._run("stat", "-c", "%s", "--", path, check=False)
        return int(out.strip()) if rc == 0 and out.strip().isdigit() else None

    def makedirs(self, path: str) -> None:
        if path not in self._made:
            self._run("mkdir", "-p", "--", path)
            self._made.add(path)

    def _ack(self, channel: paramiko.Channel) -> None:
        code = channel.recv(1)
        if code != b"\0":
            detail = channel.recv(512).decode(errors="replace").strip() if code else "closed"
            raise RemoteError(f"scp refused: {detail}")

    def put(self, write: Callable[[Writer], int], size: int, path: str) -> int:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise RemoteError("ssh connection lost")
        try:
            channel = transport.open_session(timeout=self.timeout)
            channel.settimeout(self.timeout)
            channel.exec_command("scp -t -- " + shlex.quote(path))
            self._ack(channel)
            name = posixpath.basename(path).replace("\n", "_")
            channel.sendall(f"C0644 {size} {name}\n".encode())
            self._ack(channel)
            sent = write(_ChannelWriter(channel))
            if sent != size:
                raise RemoteError(f"scp of {path}: sent {sent} bytes, announced {size}")
            channel.sendall(b"\0")
            self._ack(channel)  # the sink acks once the file is written: size confirmed
            channel.close()
            self._confirmed[path] = sent
            return sent
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
            raise RemoteError(f"scp to {path}: {exc}") from None

    def rename(self, src: str, dst: str) -> None:
        self._confirmed.pop(src, None)
        self._run("mv", "-f", "--", src, dst)

    def remove(self, path: str) -> None:
        self._confirmed.pop(path, None)
        self._run("rm", "-f", "--", path)

    def listdir(self, path: str) -> list[str]:
        rc, out = self._run("ls", "-1A", "--", path, check=False)
        return [line for line in out.splitlines() if line] if rc == 0 else []

    def rmdir(self, path: str) -> None:
        self._made.discard(path)
        self._run("rmdir", "--", path)

    def close(self) -> None:
        self.client.close()


def connect(cfg: BackupConfig) -> RemoteStore:
    client = ssh_connect(cfg)
    if cfg.protocol == "scp":
        return ScpStore(client, cfg.connect_timeout * 3)
    return SftpStore(client)


def copy_into(src: BinaryIO, dst: Writer, length: int, throttle: Throttle) -> int:
    """Copy ``length`` bytes of ``src`` to ``dst`` at the throttle's pace."""
    done = 0
    # Under a rate cap, small steps keep the pace smooth (about 10 a second).
    step = COPY_CHUNK if throttle.rate <= 0 else int(min(COPY_CHUNK, max(8192, throttle.rate / 10)))
    while done < length:
        chunk = src.read(min(step, length - done))
        if not chunk:
            raise RemoteError(f"local file shrank: {done} of {length} bytes read")
        dst.write(chunk)
        done += len(chunk)
        throttle.add(len(chunk))
    return done
