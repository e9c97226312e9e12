"""The notify service as a real process: kill -9 in the middle of an upload."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.bus import Bus
from common.config import parse_config
from common.messages import Forget, Heartbeat, Recording
from common.paths import Home
from tests.notify.conftest import backup_section, wait_until
from tests.notify.peers import SshServer

ROOT = Path(__file__).resolve().parents[2]


def toml_value(value: object) -> str:
    return json.dumps(value)  # JSON scalars and lists are valid TOML here


def write_config(path: Path, backup: dict[str, object]) -> None:
    lines = ["[notify.backup]"] + [f"{k} = {toml_value(v)}" for k, v in backup.items()]
    path.write_text("\n".join(lines) + "\n")


def start_notify(home: Path, config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PISENTRY_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "common.cli", "notify", "--config",
                             str(config)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"))


@pytest.mark.slow
def test_kill_9_mid_upload_completes_after_restart_without_duplicate(
        sshd: SshServer, tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    clip = home.recordings_dir / "cam1-event.mp4"
    clip.write_bytes(os.urandom(1_000_000))
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()
    config_file = tmp_path / "notify.toml"
    write_config(config_file, backup_section(sshd, rate_limit_kbps=300))
    config = parse_config({})
    bus = Bus(config, home)
    record = bus.publisher("record")
    beats = bus.subscriber(["notify"], [Heartbeat.TOPIC])
    log = tmp_path / "notify.log"
    proc = start_notify(home.root, config_file, log)
    try:
        # Slow joiner: keep announcing until notify's heartbeat counts our messages.
        def heard() -> bool:
            record.publish(Heartbeat, ts=time.time(), service="record", pid=0, started=0.0,
                           status="ok")
            return any(m.header.counters.get("in", 0) > 0 for m in beats.recv(0.2))
        wait_until(heard, 15, "notify to start and hear record")
        record.publish(Recording, ts=time.time(), phase="finished", path=str(clip),
                       start=time.time(), end=time.time(), duration=10.0,
                       size=clip.stat().st_size, event_id="ev1")
        day = time.strftime("%Y/%m/%d")
        part = sshd.root / "cam" / day / ".cam1-event.mp4.part"
        wait_until(lambda: part.exists() and part.stat().st_size > 100_000, 15,
                   "the upload to be under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        assert part.stat().st_size < clip.stat().st_size
        killed_write = part.stat().st_mtime_ns
        assert len(list(home.backup_queue.glob("*.json"))) == 1
        proc = start_notify(home.root, config_file, log)
        # A clean stop in the middle of the resumed upload is prompt too.
        def resumed() -> bool:  # written by the new process, not the killed one's leftover
            st = part.stat()
            return st.st_mtime_ns > killed_write and 50_000 < st.st_size < 500_000
        wait_until(resumed, 15, "the upload to resume")
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - began < 2.0
        proc = start_notify(home.root, config_file, log)
        final = sshd.root / "cam" / day / "cam1-event.mp4"
        wait_until(lambda: not list(home.backup_queue.glob("*.json")), 30,
                   "the queue to empty after the restart")
        files = sshd.files()
        assert list(files) == [f"cam/{day}/cam1-event.mp4"], list(files)
        assert hashlib.sha256(final.read_bytes()).hexdigest() == digest
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        bus.close()
    assert proc.returncode == 0, log.read_text()[-2000:]


@pytest.mark.slow
def test_a_clip_deleted_after_its_backup_leaves_the_recorders_catalogue(
        sshd: SshServer, tmp_path: Path) -> None:
    """notify (deletes the local copy once the NAS has it) and record (owns the
    catalogue) as real processes on one home."""
    from common.catalogue import CatalogueReader, CatalogueWriter

    home = Home(tmp_path / "home").ensure()
    uploaded, kept = home.recordings_dir / "cam1-up.mp4", home.recordings_dir / "cam1-kept.mp4"
    now = time.time()
    with CatalogueWriter(home.catalogue) as cat:
        # notify's catch-up at start queues this camera's recent clips: `uploaded`
        for clip, camera in ((uploaded, "cam1"), (kept, "cam2")):
            clip.write_bytes(os.urandom(200_000))
            cat.add_clip(clip, camera, now - 30, "event")
            cat.finish_clip(clip, end=now - 20, duration=10.0, size=200_000, frames=100)
    config_file = tmp_path / "notify.toml"
    write_config(config_file, backup_section(sshd, delete_local_after_upload=True))
    record_file = tmp_path / "record.toml"
    record_file.write_text("[record.retention]\nmin_free_mb = 0\n")
    env = {**os.environ, "PISENTRY_HOME": str(home.root)}
    with open(tmp_path / "record.log", "ab") as record_log:  # the child keeps its own fd
        recorder = subprocess.Popen([sys.executable, "-m", "common.cli", "record", "--config",
                                     str(record_file)], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=record_log)
    bus = Bus(parse_config({}), home)
    web = bus.publisher("web")
    notify = None
    try:
        wait_until(lambda: (home.run_dir / "record.sock").exists(), 15, "record to start")
        notify = start_notify(home.root, config_file, tmp_path / "notify.log")
        day = time.strftime("%Y/%m/%d", time.localtime(now - 30))
        wait_until(lambda: (sshd.root / "cam" / day / uploaded.name).exists()
                   and not uploaded.exists(), 20, "the upload and the local delete")
        with CatalogueReader(home.catalogue) as cat:
            wait_until(lambda: cat.clip_by_path(uploaded) is None, 10,
                       "record to forget the uploaded clip")
            # A forget for a clip whose file is still here is refused.
            for _ in range(10):
                web.publish(Forget, ts=time.time(), path=str(kept), source="web")
                time.sleep(0.1)
            assert cat.clip_by_path(kept) is not None and kept.exists()
    finally:
        for proc in (notify, recorder):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        bus.close()
