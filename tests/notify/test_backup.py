"""Backups against a real OpenSSH sshd on loopback: SFTP and SCP."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from common.clipchain import PUBLIC_FILE, ClipSigner, load_public_key, verify
from common.config import BackupConfig
from common.messages import Recording
from common.paths import Home
from services.notify import crypto
from services.notify.backup import BackupManager, UploadTrigger, apply_retention
from services.notify.remote import HostKeyError, connect
from tests.notify.conftest import backup_section, wait_until
from tests.notify.peers import SshServer


def make_clip(folder: Path, name: str, size: int = 200_000, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(hashlib.sha256(str(seed).encode()).digest() * (size // 32)
                     + os.urandom(size % 32))
    return path


def day_dir(ts: float) -> str:
    return time.strftime("%Y/%m/%d", time.localtime(ts))


def manager(server: SshServer, tmp_path: Path, **extra: object) -> BackupManager:
    cfg = BackupConfig(**backup_section(server, **extra))
    return BackupManager(cfg, tmp_path / "queue" / "backup")


@pytest.mark.parametrize("protocol", ["sftp", "scp"])
def test_clip_lands_in_the_day_tree_under_its_own_name(sshd: SshServer, tmp_path: Path,
                                                       protocol: str) -> None:
    clip = make_clip(tmp_path / "rec", "cam1-20260601-120000.mp4")
    start = time.mktime((2026, 6, 1, 12, 0, 0, 0, 0, -1))
    m = manager(sshd, tmp_path, protocol=protocol)
    assert m.enqueue_clip(str(clip), "cam1", start)
    assert not m.enqueue_clip(str(clip), "cam1", start)  # the same clip is queued once
    queued = json.loads(next((tmp_path / "queue" / "backup").glob("*.json")).read_text())
    assert queued["path"] == str(clip)  # the recorder's retention reads this key
    m.step()
    files = sshd.files()
    assert files == {f"cam/2026/06/01/{clip.name}": clip.read_bytes()}, list(files)
    assert len(m.queue) == 0 and m.counters["uploaded"] == 1


def test_an_interrupted_upload_never_shows_under_the_real_name(sshd: SshServer,
                                                                tmp_path: Path) -> None:
    """The data goes to .NAME.part and is renamed only once complete."""
    clip = make_clip(tmp_path / "rec", "a.mp4")
    m = manager(sshd, tmp_path)
    store = connect(m.cfg)
    names: list[list[str]] = []
    real_put = store.put

    def spying_put(write, size, path):  # type: ignore[no-untyped-def]
        sent = real_put(write, size, path)
        names.append(store.listdir(os.path.dirname(path)))
        return sent

    store.put = spying_put  # type: ignore[method-assign]
    m.enqueue_clip(str(clip), "cam1", time.time())
    m.upload(store, m.queue.jobs()[0])
    store.close()
    assert names == [[".a.mp4.part"]]
    assert list(sshd.files()) == [f"cam/{day_dir(time.time())}/a.mp4"]


def test_wrong_or_unknown_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    for known in (sshd.wrong_known_hosts(), tmp_path / "empty_known_hosts"):
        known.touch()
        cfg = BackupConfig(**backup_section(sshd, known_hosts=str(known)))
        with pytest.raises(HostKeyError, match="refused"):
            connect(cfg)
        m = BackupManager(cfg, tmp_path / "q" / known.name)
        m.enqueue_clip(str(make_clip(tmp_path / "rec", "x.mp4")), "cam1", time.time())
        m.step()
        assert len(m.queue) == 1 and "refused" in m.last_error
    assert sshd.files() == {}


def test_outage_ten_clips_arrive_exactly_once(sshd: SshServer, tmp_path: Path) -> None:
    m = manager(sshd, tmp_path)
    m.start()
    try:
        first = make_clip(tmp_path / "rec", "clip00.mp4", seed=100)
        m.enqueue_clip(str(first), "cam1", time.time())
        wait_until(lambda: len(m.queue) == 0, 10, "first upload")
        sshd.stop()
        clips = [make_clip(tmp_path / "rec", f"clip{i:02d}.mp4", seed=i) for i in range(1, 11)]
        for clip in clips:
            m.enqueue_clip(str(clip), "cam1", time.time())
            time.sleep(0.1)
        time.sleep(1.0)  # several failed tries while the NAS is down
        assert len(m.queue) == 10 and m.counters["failed"] >= 1
        sshd.start()
        wait_until(lambda: len(m.queue) == 0, 20, "the backlog to drain")
    finally:
        m.stop()
    files = sshd.files()
    folder = f"cam/{day_dir(time.time())}"
    assert sorted(files) == [f"{folder}/clip{i:02d}.mp4" for i in range(11)]
    for clip in [first, *clips]:
        assert files[f"{folder}/{clip.name}"] == clip.read_bytes()
    assert m.counters["uploaded"] == 11


def test_pieces_of_a_growing_clip_then_the_whole_clip(sshd: SshServer, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "rec", "grow.mp4", size=100_000)
    full = clip.read_bytes()
    clip.write_bytes(full[:30_000])
    m = manager(sshd, tmp_path)
    now = time.time()
    m.enqueue_piece(str(clip), "cam1", now, 30_000)
    m.step()
    clip.write_bytes(full[:70_000])
    m.enqueue_piece(str(clip), "cam1", now, 70_000)
    m.step()
    folder = f"cam/{day_dir(now)}"
    pieces = sshd.files()
    assert sorted(pieces) == [f"{folder}/grow.mp4.piece000000000000",
                              f"{folder}/grow.mp4.piece000000030000"]
    # The pieces joined are the clip so far: a stolen camera already sent this much.
    assert b"".join(pieces[k] for k in sorted(pieces)) == full[:70_000]
    clip.write_bytes(full)
    m.enqueue_clip(str(clip), "cam1", now)
    m.step()
    assert sshd.files() == {f"{folder}/grow.mp4": full}


def test_encrypted_backup_decrypts_to_the_clip(sshd: SshServer, tmp_path: Path) -> None:
    private, public = crypto.generate_keypair(2048)
    (tmp_path / "pub.pem").write_bytes(public)
    (tmp_path / "priv.pem").write_bytes(private)
    clip = make_clip(tmp_path / "rec", "secret.mp4", size=1_500_000)
    m = manager(sshd, tmp_path, encrypt_public_key=str(tmp_path / "pub.pem"))
    m.enqueue_clip(str(clip), "cam1", time.time())
    m.step()
    (name, data), = sshd.files().items()
    assert name.endswith("secret.mp4.enc") and clip.read_bytes()[:4096] not in data
    out = io.BytesIO()
    crypto.decrypt_stream(io.BytesIO(data), out, crypto.load_private_key(tmp_path / "priv.pem"))
    assert out.getvalue() == clip.read_bytes()


def test_remote_retention_and_local_delete(sshd: SshServer, tmp_path: Path) -> None:
    for day in ("2020/01/01", "2020/01/02"):
        (sshd.root / "cam" / day).mkdir(parents=True)
        (sshd.root / "cam" / day / "old.mp4").write_bytes(b"old")
    clip = make_clip(tmp_path / "rec", "new.mp4")
    m = manager(sshd, tmp_path, limit_days=7, delete_local_after_upload=True)
    m.enqueue_clip(str(clip), "cam1", time.time())
    m.step()
    assert list(sshd.files()) == [f"cam/{day_dir(time.time())}/new.mp4"]
    assert not (sshd.root / "cam" / "2020").exists()
    assert not clip.exists() and m.counters["retention_removed"] == 2
    store = connect(m.cfg)
    try:
        assert apply_retention(store, m.cfg.remote_dir, 7, time.time()) == 0
    finally:
        store.close()


def test_upload_trigger_count_and_minutes() -> None:
    count = UploadTrigger("count", count=3)
    assert not count.due(0, 2)
    assert count.due(0, 3)
    assert count.due(0, 1)  # a flush empties the queue
    assert not count.due(0, 0) and not count.due(0, 2)
    minutes = UploadTrigger("minutes", minutes=[20])
    at_20 = time.mktime((2026, 6, 1, 10, 20, 5, 0, 0, -1))
    assert not minutes.due(at_20 - 60, 5)
    assert minutes.due(at_20, 5)
    assert not minutes.due(at_20 + 10, 0)
    assert not minutes.due(at_20 + 20, 5)  # the same minute does not trigger twice


def test_killed_after_rename_is_not_sent_again(sshd: SshServer, tmp_path: Path) -> None:
    """The queue entry outlived the upload (kill -9 between rename and dequeue)."""
    clip = make_clip(tmp_path / "rec", "twice.mp4")
    m = manager(sshd, tmp_path)
    m.enqueue_clip(str(clip), "cam1", time.time())
    entry = next(m.queue.folder.glob("*.json"))
    saved = entry.read_bytes()
    m.step()
    remote = sshd.root / "cam" / day_dir(time.time()) / "twice.mp4"
    first_inode = remote.stat().st_ino
    entry.write_bytes(saved)  # as if the dequeue never happened
    m.step()
    assert m.counters == {**m.counters, "uploaded": 1, "skipped_existing": 1}
    assert remote.stat().st_ino == first_inode and len(m.queue) == 0


def test_service_ships_progress_pieces_then_the_clip(sshd: SshServer, tmp_path: Path,
                                                     harness_factory: Any) -> None:
    """Recording progress / finished on the bus drive the pieces and the clip."""
    h = harness_factory({"backup": backup_section(sshd)})
    clip = make_clip(tmp_path / "staging", "cam1-ev.mp4", size=90_000)
    full = clip.read_bytes()
    clip.write_bytes(full[:40_000])
    start = time.time()
    h.record.publish(Recording, ts=start, phase="started", path=str(clip), start=start)
    h.record.publish(Recording, ts=start + 2, phase="progress", path=str(clip), start=start,
                     size=40_000)
    folder = sshd.root / "cam" / day_dir(start)
    wait_until(lambda: (folder / "cam1-ev.mp4.piece000000000000").exists(), 10, "a piece")
    final = make_clip(tmp_path / "rec", "cam1-ev.mp4", size=90_000)  # moved out of staging
    final.write_bytes(full)
    h.record.publish(Recording, ts=start + 3, phase="finished", path=str(final), start=start,
                     end=start + 3, duration=3.0, size=len(full), event_id="ev")
    wait_until(lambda: sorted(p.name for p in folder.iterdir()) == ["cam1-ev.mp4"], 10,
               "the clip to replace its pieces")
    assert (folder / "cam1-ev.mp4").read_bytes() == full


def test_a_clips_proof_travels_beside_it_and_verifies_on_the_nas(
        sshd: SshServer, tmp_path: Path, harness_factory: Any, home: Home) -> None:
    h = harness_factory({"backup": backup_section(sshd)})
    start = time.time()
    signer = ClipSigner(home.state_dir, "cam1")
    for i in range(2):
        clip = make_clip(tmp_path / "rec", f"cam1-ev{i}.mp4", size=30_000 + i)
        signer.sign(clip)  # as record does, before it says the clip is finished
        h.record.publish(Recording, ts=start, phase="finished", path=str(clip), start=start,
                         end=start + 3, duration=3.0, size=clip.stat().st_size,
                         event_id=f"ev{i}")
    folder = sshd.root / "cam" / day_dir(start)
    names = ["cam1-ev0.mp4", "cam1-ev0.mp4.sig.json", "cam1-ev1.mp4", "cam1-ev1.mp4.sig.json"]
    wait_until(lambda: folder.is_dir() and sorted(p.name for p in folder.iterdir()) == names,
               10, "both clips and their proofs on the NAS")
    report = verify([sshd.root / "cam"], load_public_key(home.state_dir / PUBLIC_FILE))
    assert report.ok and report.checked == 2, report


def test_trigger_count_counts_clips_not_their_proofs(sshd: SshServer, tmp_path: Path,
                                                     home: Home) -> None:
    """With trigger_count = 2 one signed clip waits (its proof is no second clip),
    and the second clip sends both clips with both proofs."""
    m = manager(sshd, tmp_path, trigger="count", trigger_count=2)
    signer = ClipSigner(home.state_dir, "cam1")
    start = time.time()
    clips = [make_clip(tmp_path / "rec", f"cam1-ev{i}.mp4", size=20_000 + i) for i in range(2)]
    signer.sign(clips[0])
    m.enqueue_clip(str(clips[0]), "cam1", start)
    m.step()
    assert sshd.files() == {} and len(m.queue) == 2, "one clip and its proof must wait"
    signer.sign(clips[1])
    m.enqueue_clip(str(clips[1]), "cam1", start)
    for _ in range(10):
        m.step()
    names = sorted(name.rsplit("/", 1)[-1] for name in sshd.files())
    assert names == ["cam1-ev0.mp4", "cam1-ev0.mp4.sig.json", "cam1-ev1.mp4",
                     "cam1-ev1.mp4.sig.json"], names
    assert len(m.queue) == 0 and m.counters["uploaded"] == 4
