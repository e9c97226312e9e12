"""One running instance per ``$PISENTRY_HOME``.

``pisentry run`` holds an exclusive ``flock`` on ``run/pisentry.lock`` for as
long as it (or the supervisord it started, which inherits the lock) lives; a
second ``pisentry run`` on the same home is told who holds it. The kernel
drops the lock with its last holder, so a power cut or ``kill -9`` never
leaves a lock behind that would need removing by hand.

Once the lock is held, no instance of this home is running, so a socket file
left in ``run/`` by a dead one is stale: it is removed if nobody answers on
it. One that answers belongs to a process that outlived its instance, and is
reported with that process's pid rather than removed from under it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from pathlib import Path

from common.paths import Home

LOCK_NAME = "pisentry.lock"


class InstanceRunning(RuntimeError):
    """Another ``pisentry run`` holds this home."""

    def __init__(self, home: Home, pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"pisentry is already running in {home.root}{who}; stop it first, "
                         "or give this one its own PISENTRY_HOME")
        self.pid = pid


class SocketInUse(RuntimeError):
    """A socket in ``run/`` answers though no instance holds the home."""


class InstanceLock:
    """The held lock; its descriptor is inheritable (``fd``) so a child keeps
    the home locked while it lives."""

    def __init__(self, home: Home) -> None:
        self.path = home.run_dir / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise InstanceRunning(home, pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def clear_stale_sockets(home: Home) -> list[Path]:
    """Remove the unix sockets in ``run/`` nobody listens on (call with the
    lock held); the removed paths. Raises ``SocketInUse`` for one that answers."""
    removed = []
    for path in sorted(home.run_dir.iterdir()):
        try:
            if not stat.S_ISSOCK(path.lstat().st_mode):
                continue
        except FileNotFoundError:
            continue
        if _answers(path):
            owner = socket_owner(path)
            by = f" by pid {owner}" if owner else ""
            raise SocketInUse(f"{path} is in use{by}, though no pisentry instance holds "
                              f"{home.root}: a process left over from an earlier run? "
                              "Stop it, then start again")
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return False
            raise
        return True


def socket_owner(path: Path) -> int | None:
    """The pid of a process (of this user) that has the listening unix socket
    ``path`` open, from /proc; None if none can be seen."""
    inodes = set()
    try:
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == str(path):
                inodes.add(f"socket:[{fields[6]}]")
    except OSError:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None
