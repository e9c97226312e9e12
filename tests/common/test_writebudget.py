"""The write budget's parts on real files and real mounts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config import parse_config
from common.pihealth import Problems, read_health
from common.writebudget import card_life_years, disk_of, process_write_bytes


def test_a_process_that_writes_3_mb_is_seen_writing_3_mb(tmp_path: Path) -> None:
    target = Path(__file__).resolve().parent / ".write-test"  # a real disk, not tmpfs
    code = ("import os, sys\nf = open(sys.argv[1], 'wb'); f.write(os.urandom(3_000_000))\n"
            "f.flush(); os.fsync(f.fileno()); print(open('/proc/self/io').read())\n"
            "sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        while "cancelled_write_bytes" not in proc.stdout.readline():
            pass
        written = process_write_bytes(proc.pid)
        assert written is not None and 3_000_000 <= written < 3_200_000
    finally:
        proc.communicate("")
        target.unlink(missing_ok=True)
    assert process_write_bytes(proc.pid) is None  # gone
    assert process_write_bytes() is not None


def test_card_life_scales_with_the_rate() -> None:
    year20 = card_life_years(20e6, 32_000_000_000)
    assert year20 is not None and year20 > 100  # 20 MB a day: the card outlives the Pi
    year_video = card_life_years(20e9, 32_000_000_000)  # 20 GB of clips a day
    assert year_video is not None and 0.3 < year_video < 1
    assert card_life_years(0, 32_000_000_000) is None


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("mounting needs root (CAP_SYS_ADMIN)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_filesystem_turning_read_only_is_one_alert_and_one_all_clear(tmpfs: Path) -> None:
    disk = disk_of(tmpfs)
    assert disk.mount == str(tmpfs) and disk.fstype == "tmpfs" and not disk.usb
    assert not disk.read_only
    cfg = parse_config({"health": {"throttled_path": "", "thermal_path": "",
                                   "disk_free_alert_mb": 0, "memory_alert_mb": 0}}).health
    problems = Problems(cfg)
    assert problems.update(read_health(cfg, tmpfs)) == []
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    assert disk_of(tmpfs).read_only
    raised = problems.update(read_health(cfg, tmpfs))
    assert [(t.condition, t.raised) for t in raised] == [("read-only", True)]
    assert problems.update(read_health(cfg, tmpfs)) == []
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    cleared = problems.update(read_health(cfg, tmpfs))
    assert [(t.condition, t.raised) for t in cleared] == [("read-only", False)]


def test_the_root_disk_is_a_block_device_here() -> None:
    disk = disk_of(Path(os.getcwd()))
    assert disk.size > 0 and disk.mount
