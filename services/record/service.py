"""The record service: a thin shell around ``Recorder``, ``RetentionKeeper``,
``SnapshotStore`` and ``recover``.

Subscribes to ``h264/`` and ``videosupply/`` (endpoint video; ``h264/``
only while a clip is written when capture keeps the pre-roll, see
``Recorder``), ``motion/``, ``openevent/`` (an event that started while we
were down) and ``snapshot/`` (detect) and the commands that change the catalogue, which only record
writes: ``Forget`` (notify: a clip it deleted after its backup) and ``Label``
(web, notify: a user's verdict on an event); publishes ``recording/``, periodic
``snapshot/`` headers, and retention notices (``Notice`` to notify) on its
own endpoint ``record``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import zmq

from common.bus import Message
from common.catalogue import CatalogueError, CatalogueWriter
from common.clipchain import ProofError, sign_in_child
from common.gopring import Packet
from common.messages import (
    Forget,
    Label,
    Motion,
    Notice,
    OpenEvent,
    Recording,
    Snapshot,
    VideoPacket,
    VideoSupply,
)
from common.worker import SetupError, Worker
from services.record.recorder import ClipNote, Recorder
from services.record.recovery import recover
from services.record.retention import SHORT_LOG_REPEAT_SECONDS, RetentionKeeper
from services.record.snapshots import SnapshotStore, keyframe_jpeg

log = logging.getLogger(__name__)

RETENTION_CHECK_SECONDS = 1.0


class RecordService(Worker):
    name = "record"

    def setup(self) -> None:
        cfg = self.config.record
        self.counters.update({"clip_bytes": 0, "signed": 0})
        self.storage = Path(cfg.storage_dir).expanduser() if cfg.storage_dir \
            else self.home.recordings_dir
        self.staging = Path(cfg.staging_dir).expanduser() if cfg.staging_dir else None
        for folder in (self.storage, self.staging):
            if folder is None:
                continue
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SetupError(f"record: cannot create {folder}: {exc}") from None
        try:
            self.catalogue = CatalogueWriter(self.home.catalogue)
        except CatalogueError as exc:
            raise SetupError(str(exc)) from None
        self.recorder = Recorder(cfg, self.camera, self.storage, self.catalogue, self.clock,
                                 self.staging)
        # Listening before the rest of the start-up (recovery, the key's
        # check): what comes meanwhile waits in the sockets, so a restart
        # mid-event loses only the video from before we subscribed. Nothing
        # is handled (no clip opens) until setup is over, so recovery still
        # sees only what the dead recorder left open.
        # h264 until capture says it keeps the pre-roll (VideoSupply)
        self.video_sub = self.subscribe(["video"], [VideoSupply.TOPIC, VideoPacket.TOPIC])
        self._video_on = True
        self.subscribe(["detect"], [Motion.TOPIC, OpenEvent.TOPIC, Snapshot.TOPIC])
        self.subscribe(["notify", "web"], [Forget.TOPIC, Label.TOPIC])
        self.first_video = 0.0  # capture ts of the first h264 packet we got
        self.first_video_at = 0.0  # ... and when it came (a replay's is older)
        # Their proofs (a child process each) from the first tick: signing
        # must not delay the start.
        self._recovered = recover(self.catalogue, self.storage, self.staging)
        for note in self._recovered:
            log.info("recovered %s (%.1f s)", note.path, note.duration)
        try:  # the key made, or checked, now: a damaged one is a setup error
            sign_in_child(self.home.state_dir, self.camera)
        except ProofError as exc:
            raise SetupError(f"record: {exc}") from None
        self.retention = RetentionKeeper(cfg.retention, self.storage, self.catalogue,
                                         self.home.backup_queue)
        self.snapshots = SnapshotStore(self.storage, self.catalogue, self.camera)
        self._next_retention = 0.0
        self._next_periodic = self.clock() + cfg.periodic_snapshot_minutes * 60
        self._forced_until = 0.0
        self._full_said = -1e18
        self._write_alarm = False
        self._snapshot_kind = ""  # a snapshot waiting for the next live keyframe

    # -- messages -------------------------------------------------------------------
    def handle(self, msg: Message) -> None:
        h = msg.header
        if isinstance(h, VideoPacket):
            if not msg.payload:
                self.counters["dropped"] += 1
                return
            if not self.first_video:
                self.first_video, self.first_video_at = h.ts, self.clock()
            self.recorder.on_video(Packet(msg.payload[0], h.pts, h.ts, h.keyframe, h.width,
                                          h.height, h.fps, h.replay), msg.gap)
            if self._snapshot_kind and h.keyframe and not h.replay:
                kind, self._snapshot_kind = self._snapshot_kind, ""
                self.recorder.snapshot_wanted = False
                self._own_snapshot(kind)
        elif isinstance(h, VideoSupply):
            self.recorder.supply(h.preroll)
        elif isinstance(h, Motion):
            self.recorder.on_motion(h)
        elif isinstance(h, OpenEvent):
            if h.camera == self.camera:
                self.recorder.on_open_event(h)
        elif isinstance(h, Snapshot):
            self._on_snapshot(h, msg.payload)
        elif isinstance(h, Forget):
            self._forget(h.path)
        elif isinstance(h, Label):
            self._label(h)
        self._flush()
        self._follow_video()

    def _follow_video(self) -> None:
        """Subscribe to h264 while the recorder wants it, and only then."""
        want = self.recorder.wants_video()
        if want == self._video_on:
            return
        self.video_sub.socket.setsockopt(zmq.SUBSCRIBE if want else zmq.UNSUBSCRIBE,
                                         VideoPacket.TOPIC)
        self._video_on = want
        if want:
            self.recorder.video_on()
        else:
            self.recorder.video_off()
        log.debug("h264 %s", "on" if want else "off")

    def _on_snapshot(self, h: Snapshot, payload: list[memoryview]) -> None:
        if h.camera != self.camera or not payload:
            return
        next_to = None
        if h.event_id:
            next_to = self.recorder.clip_for_event(h.event_id)
            if next_to is None:
                clips = self.catalogue.clips_for(h.event_id)
                next_to = Path(clips[-1].path) if clips else None
        path = self.snapshots.save(payload[0], h.ts, h.kind or "event", h.event_id, h.width,
                                   h.height, next_to)
        if self.config.record.debug_mask_image and len(payload) > 1:
            suffix = ".png" if bytes(payload[1][:4]) == b"\x89PNG" else ".jpg"
            self.snapshots.save(payload[1], h.ts, "mask", h.event_id, h.width, h.height,
                                path, suffix)

    def _label(self, h: Label) -> None:
        if not self.catalogue.set_label(h.event_id, h.verdict):
            log.warning("label from %s: no event %r", h.source or "?", h.event_id[:80])

    def _forget(self, path: str) -> None:
        """A clip deleted elsewhere (after its backup) leaves the catalogue; only
        one of ours whose file is really gone."""
        if Path(path).exists() or self.catalogue.clip_by_path(path) is None:
            log.warning("forget: %r is not a deleted clip of ours; kept", path)
            return
        self.catalogue.delete_clip(path)
        log.info("forgot %s (deleted after its backup)", path)

    def _own_snapshot(self, kind: str) -> None:
        if not self._video_on:  # capture makes video on demand: at the next keyframe
            self._snapshot_kind = kind
            self.recorder.snapshot_wanted = True
            self._follow_video()
            return
        key = self.recorder.ring.latest_keyframe()
        if key is None:
            log.info("no video yet for a %s snapshot", kind)
            return
        jpeg = keyframe_jpeg(key, self.config.detect.snapshot_quality)
        self.snapshots.save(jpeg, key.ts, kind, width=key.width, height=key.height)
        assert self.pub is not None
        self.pub.publish(Snapshot, [jpeg], ts=key.ts, event_id="", kind=kind, width=key.width,
                         height=key.height)

    # -- periodic work ----------------------------------------------------------------
    def tick(self, now: float) -> float | None:
        if self._recovered:
            notes, self._recovered = self._recovered, []
            for note in notes:
                self._publish(note)
        self.recorder.poll(now)
        cfg = self.config.record
        if cfg.periodic_snapshot_minutes and now >= self._next_periodic:
            self._next_periodic = now + cfg.periodic_snapshot_minutes * 60
            self._own_snapshot("periodic")
        if now >= self._next_retention:
            self._next_retention = now + RETENTION_CHECK_SECONDS
            self._retention(now)
        self._flush()
        self._follow_video()
        self._watch_writes(now)
        return None

    def _watch_writes(self, now: float) -> None:
        """A write that fails (the card turned read-only, a USB disk pulled, a
        full disk) is told at once, and again when clips are written again."""
        failing = self.recorder.backoff > 0
        if failing == self._write_alarm:
            return
        self._write_alarm = failing
        text = (f"cannot write clips: {self.recorder.last_write_error}" if failing else
                "all clear: clips are written again")
        assert self.pub is not None
        self.pub.publish(Notice, ts=now, kind="storage", text=text, all_clear=not failing,
                         source=self.name)

    def _retention(self, now: float) -> None:
        plan = self.retention.check(now, self.recorder.open_paths(),
                                    self.recorder.growing_bytes(), self.recorder.byte_rate())
        if plan.forced or plan.short:
            text = (f"storage about to fill: deleted {len(plan.forced)} clip(s) not yet "
                    f"uploaded" if plan.forced else
                    f"storage full: {plan.short // 1_000_000} MB over the limit, only open "
                    "clips left")
            self.degraded = text
            self._forced_until = now + 60.0
            # Each forced deletion is news; a disk that stays full is said once
            # (and again after the log's repeat), not every second.
            if plan.forced or now - self._full_said >= SHORT_LOG_REPEAT_SECONDS:
                self._full_said = now if plan.short else self._full_said
                assert self.pub is not None
                self.pub.publish(Notice, ts=now, kind="storage", text=text, source=self.name)
        elif self.degraded and now >= self._forced_until:
            self.degraded = ""
            self._full_said = -1e18

    def _flush(self) -> None:
        for note in self.recorder.outbox:
            self._publish(note)
        self.recorder.outbox.clear()

    def _publish(self, note: ClipNote) -> None:
        assert self.pub is not None
        if note.phase == "finished":
            self.counters["clip_bytes"] += note.size  # the writes a camera is for
            self._sign(Path(note.path))
        ts = note.start if note.phase == "started" else (note.end or note.start)
        self.pub.publish(Recording, ts=ts, phase=note.phase, path=note.path, start=note.start,
                         end=note.end, duration=note.duration, size=note.size,
                         event_id=note.event_id, reason=note.reason)

    def _sign(self, clip: Path) -> None:
        """Its proof beside the clip before anyone hears it is finished, so
        the backup ships both (see ``common.clipchain``)."""
        try:
            proof = sign_in_child(self.home.state_dir, self.camera, clip)
            assert proof is not None
            self.catalogue.set_proof(clip, sha256=proof.sha256, prev_sha256=proof.prev_sha256,
                                     chain_seq=proof.seq, signature=proof.signature)
            self.counters["signed"] += 1
        except (OSError, ProofError) as exc:
            self.record_error(f"signing {clip.name}", exc)

    # -- lifecycle ----------------------------------------------------------------------
    def drain(self) -> None:
        self.recorder.close_all()
        self._flush()

    def teardown(self) -> None:
        if hasattr(self, "catalogue"):
            self.catalogue.close()

    def status_counters(self) -> dict[str, Any]:
        r = self.recorder
        return {"clips": r.counters["clips"], "open": len(r.open_paths()),
                "preroll_s": round(r.ring.span, 1), "preroll_bytes": r.ring.bytes,
                "video": self._video_on, "on_demand": r.on_demand,
                "first_video": round(self.first_video, 3),
                "first_video_at": round(self.first_video_at, 3),
                "replay_dropped": r.counters["replay_dropped"],
                "skipped": r.counters["skipped"], "write_errors": r.counters["write_errors"],
                "deleted": self.retention.deleted, "deleted_unuploaded": self.retention.forced}
