"""A process that ends when its parent does (Linux ``PR_SET_PDEATHSIG``).

``pisentry run`` starts supervisord with this, and every service calls it
under supervisord: whichever of them is killed (even with SIGKILL, which no
handler sees), the processes below it get SIGTERM and stop cleanly instead of
running on as orphans nobody restarts.
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM, parent_pid: int | None = None,
                    parent_name: str | None = None) -> bool:
    """Have the kernel send ``sig`` to this process when its parent ends.
    ``parent_pid`` / ``parent_name`` (a word of its command line): who the
    parent must be; if it is not, the parent ended before the call (this
    process was adopted) and ``sig`` is sent at once. Safe between fork and
    exec (no allocation beyond ctypes' call). False where prctl is missing."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc, already mapped
    except (OSError, AttributeError):
        return False
    if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    ppid = os.getppid()
    if ((parent_pid is not None and ppid != parent_pid)
            or (parent_name is not None and parent_name not in _cmdline(ppid))):
        os.kill(os.getpid(), sig)
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""
