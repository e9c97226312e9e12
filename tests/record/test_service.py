"""The record service as a real process fed over real ZMQ sockets: kill -9 in the
middle of an event, restart, recovery; and the export command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.bus import Bus
from common.catalogue import CatalogueReader, CatalogueWriter, day_of
from common.clipchain import PUBLIC_FILE, Proof, load_public_key, proof_path, verify
from common.config import RecordConfig, parse_config
from common.messages import Heartbeat, Motion, Notice, Recording, Snapshot, VideoPacket
from common.paths import Home
from services.record.fmp4 import probe
from services.record.recorder import Recorder
from tests.record.h264gen import make_gop_stream

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[record]
rec_sec_before = 1.0
rec_sec_after = 1.0
[record.retention]
min_free_mb = 0
"""


def start_recorder(home: Home, cfg_file: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PISENTRY_HOME=str(home.root))
    return subprocess.Popen([sys.executable, "-m", "common.cli", "record", "--config",
                             str(cfg_file)], cwd=ROOT, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def wait_for(sub, pred, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for msg in sub.recv(0.05):
            if pred(msg.header):
                return msg.header
    raise AssertionError("timed out waiting for a message")


@pytest.mark.timeout(60)
def test_packets_it_drops_itself_show_in_its_heartbeat(tmp_path):
    """A video packet without its access unit is dropped by record, not by the
    bus: its heartbeat must still count it under ``dropped``."""
    home = Home(tmp_path / "home").ensure()
    cfg_file = tmp_path / "pisentry.toml"
    cfg_file.write_text(CONFIG)
    bus = Bus(parse_config({}), home)
    video = bus.publisher("video")
    out = bus.subscriber(["record"], [Heartbeat.TOPIC])
    proc = start_recorder(home, cfg_file, tmp_path / "record.log")
    try:
        wait_for(out, lambda h: isinstance(h, Heartbeat), 20)
        for _ in range(5):
            video.publish(VideoPacket, ts=time.time(), pts=0, keyframe=True, width=64,
                          height=48, fps=10.0)
            time.sleep(0.05)
        beat = wait_for(out, lambda h: isinstance(h, Heartbeat) and h.counters["dropped"] >= 5,
                        5)
        assert beat.counters["in"] >= 5 and beat.counters["malformed"] == 0
    finally:
        proc.terminate()
        proc.wait(10)
        bus.close()


@pytest.mark.timeout(90)
def test_kill9_mid_event_then_recover(tmp_path):
    home = Home(tmp_path / "home").ensure()
    cfg_file = tmp_path / "pisentry.toml"
    cfg_file.write_text(CONFIG)
    config = parse_config({"record": {"rec_sec_before": 1.0, "rec_sec_after": 1.0}})
    bus = Bus(config, home)
    video = bus.publisher("video")
    detect = bus.publisher("detect")
    out = bus.subscriber(["record"], [Recording.TOPIC, Heartbeat.TOPIC])
    log = tmp_path / "record.log"
    proc = start_recorder(home, cfg_file, log)
    try:
        wait_for(out, lambda h: isinstance(h, Heartbeat), 20)
        packets = make_gop_stream(14.0, fps=10.0)
        t_start = time.time()
        pts0 = time.monotonic_ns() // 1000
        jpeg = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
        notes: list[Recording] = []
        last_ts = 0.0
        for i, p in enumerate(packets[:115]):
            due = t_start + i / 10
            time.sleep(max(0.0, due - time.time()))
            last_ts = time.time()
            video.publish(VideoPacket, [p.data], ts=last_ts, pts=pts0 + p.pts,
                          keyframe=p.keyframe, width=p.width, height=p.height, fps=p.fps)
            if i == 25:
                detect.publish(Motion, ts=last_ts, event_id="e1", phase="start")
            if i == 30:
                detect.publish(Snapshot, [jpeg], ts=last_ts, event_id="e1", kind="event",
                               width=64, height=48)
            if i == 40:
                detect.publish(Motion, ts=last_ts, event_id="e1", phase="end")
            if i == 70:
                detect.publish(Motion, ts=last_ts, event_id="e2", phase="start")
            notes += [m.header for m in out.read() if isinstance(m.header, Recording)]
        time.sleep(0.3)  # let it write what it got, as a camera would keep sending
        notes += [m.header for m in out.read() if isinstance(m.header, Recording)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    e1 = [n for n in notes if n.event_id == "e1" and n.phase == "finished"]
    e2 = [n for n in notes if n.event_id == "e2"]
    assert len(e1) == 1, log.read_text()
    assert any(n.phase == "progress" and n.size > 0 for n in e2)
    # The earlier clip is intact and its snapshot sits next to it.
    info1 = probe(Path(e1[0].path))
    assert info1.error == "" and info1.first_keyframe and info1.frames == round(
        e1[0].duration * 10)
    assert Path(e1[0].path).with_suffix(".jpg").read_bytes() == jpeg
    # The interrupted clip plays up to within ~1 s of the kill.
    started = next(n for n in e2 if n.phase == "started")
    e2_path = Path(started.path)
    info2 = probe(e2_path)
    assert info2.frames > 0 and info2.first_keyframe
    e2_start = started.start
    assert e2_start + info2.last >= last_ts - 1.5, (e2_start + info2.last, last_ts)

    # Restart: the interrupted clip is recovered and the catalogue agrees with the disk.
    proc = start_recorder(home, cfg_file, log)
    try:
        wait_for(out, lambda h: isinstance(h, Heartbeat) and h.pid == proc.pid, 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    bus.close()
    cat = CatalogueReader(home.catalogue)
    rows = {c.path: c for c in cat.clips(limit=100)}
    on_disk = {str(p) for p in home.recordings_dir.rglob("*.mp4")}
    assert set(rows) == on_disk == {e1[0].path, str(e2_path)}
    for path, row in rows.items():
        assert row.size == Path(path).stat().st_size
    assert rows[str(e2_path)].state == "recovered" and rows[e1[0].path].state == "finished"
    after = probe(e2_path)
    assert after.error == "" and after.frames >= info2.frames
    assert rows[str(e2_path)].frames == after.frames
    assert cat.snapshots_for("e1")[0].path == str(Path(e1[0].path).with_suffix(".jpg"))
    assert [c.path for c in cat.clips_for("e2")] == [str(e2_path)]
    # Both are signed, the finished one first and the recovered one chained to it.
    key = load_public_key(home.state_dir / PUBLIC_FILE)
    report = verify([home.recordings_dir], key)
    assert report.ok and report.checked == 2 and report.chains == {"cam1": (0, 1)}, report
    assert Proof.read(proof_path(e2_path)).prev_name == Path(e1[0].path).name
    for path, row in rows.items():  # the catalogue holds the same proof
        proof = Proof.read(proof_path(Path(path)))
        assert (row.sha256, row.prev_sha256, row.chain_seq, row.signature) == (
            proof.sha256, proof.prev_sha256, proof.seq, proof.signature)


def test_export_day_joins_event_clips(tmp_path):
    home = Home(tmp_path / "home").ensure()
    cat = CatalogueWriter(home.catalogue)
    t0 = time.mktime((2024, 5, 7, 10, 0, 0, 0, 0, -1))
    rec = Recorder(RecordConfig(rec_sec_before=1.0, rec_sec_after=1.0, continuous=True),
                   "cam1", home.recordings_dir, cat, lambda: t0)
    for i, p in enumerate(make_gop_stream(30.0, fps=10.0, t0=t0)):
        if i in (30, 150):
            rec.on_motion(Motion("cam1", 0, p.ts, f"e{i}", "start"))
        if i in (50, 170):
            rec.on_motion(Motion("cam1", 0, p.ts, f"e{i - 20}", "end"))
        rec.on_video(p)
    rec.close_all()
    events = [n for n in rec.outbox if n.phase == "finished" and n.reason == "event"]
    assert len(events) == 2
    out = tmp_path / "day.mp4"
    env = dict(os.environ, PISENTRY_HOME=str(home.root))
    run = subprocess.run([sys.executable, "-m", "common.cli", "export", "--day", day_of(t0),
                          str(out)], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "export" in run.stderr  # the tqdm progress bar
    info = probe(out)
    assert info.error == "" and info.first_keyframe
    assert info.frames == sum(n.frames for n in events)  # the continuous clip is left out
    assert abs(info.duration - sum(n.duration for n in events)) < 0.15

    run = subprocess.run([sys.executable, "-m", "common.cli", "export", "--day", "2001-01-01",
                          str(tmp_path / "none.mp4")], check=False, cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "no event clips on 2001-01-01" in run.stderr
    assert not (tmp_path / "none.mp4").exists()
    run = subprocess.run([sys.executable, "-m", "common.cli", "export", "--day", "May 7",
                          str(out)], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "YYYY-MM-DD" in run.stderr


@pytest.mark.timeout(90)
def test_a_write_error_is_told_at_once_and_its_end_too(tmp_path):
    """The clips' disk is full (a real tmpfs): record sends one storage notice
    while it cannot write, and one all-clear once a clip is written again."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    home = Home(tmp_path / "home").ensure()
    cfg_file = tmp_path / "pisentry.toml"
    cfg_file.write_text(CONFIG.replace("[record]\n", f'[record]\nstorage_dir = "{mount}"\n'
                                       "continuous = true\n"))
    bus = Bus(parse_config({}), home)
    video = bus.publisher("video")
    out = bus.subscriber(["record"], [Recording.TOPIC, Heartbeat.TOPIC, Notice.TOPIC])
    proc = start_recorder(home, cfg_file, tmp_path / "record.log")
    notices: list[Notice] = []
    filler = mount / "filler"
    try:
        wait_for(out, lambda h: isinstance(h, Heartbeat), 20)
        packets = make_gop_stream(4.0, fps=10.0)
        pts0 = time.monotonic_ns() // 1000
        t0 = time.time()
        with open(filler, "wb") as f:  # the disk full: the first clip cannot open
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        phase = "full"
        for i in range(600):
            p = packets[i % len(packets)]
            time.sleep(max(0.0, t0 + i / 10 - time.time()))
            video.publish(VideoPacket, [p.data], ts=time.time(), pts=pts0 + i * 100_000,
                          keyframe=p.keyframe, width=p.width, height=p.height, fps=p.fps)
            notices += [m.header for m in out.read() if isinstance(m.header, Notice)]
            if phase == "full" and notices:
                filler.unlink()  # room again: the next try writes
                phase = "freed"
            elif phase == "freed" and len(notices) >= 2:
                break
        assert [n.all_clear for n in notices] == [False, True], (notices,
                                                                  (tmp_path / "record.log")
                                                                  .read_text()[-2000:])
        assert notices[0].kind == "storage" and notices[0].text.startswith("cannot write clips")
        assert notices[1].text == "all clear: clips are written again"
    finally:
        proc.terminate()
        proc.wait(10)
        bus.close()
        subprocess.run(["umount", "-l", str(mount)], check=False)
