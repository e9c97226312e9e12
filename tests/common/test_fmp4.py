"""The one fMP4 writer: the first-keyframe rule and the same stream to a file
or to memory."""

from __future__ import annotations

from pathlib import Path

from common.fmp4 import Fmp4Writer, KeyframeGate
from services.record.fmp4 import probe
from tests.web.test_h264live import access_units, decoded_frames


def test_nothing_before_the_first_keyframe_and_again_after_a_restart() -> None:
    gate = KeyframeGate()
    assert [gate.admit(k) for k in (False, False, True, False)] == [False, False, True, True]
    gate.restart()
    assert [gate.admit(k) for k in (False, True)] == [False, True] and gate.skipped == 3


def test_file_and_memory_hold_the_same_frames(tmp_path: Path) -> None:
    units = access_units(25)[5:]  # starts mid-GOP: 5 units before the keyframe at 10
    to_file = Fmp4Writer(tmp_path / "c.mp4", 320, 240, 10)
    to_memory = Fmp4Writer(None, 320, 240, 10)
    written = [to_file.write(au, pts, key, ts=pts / 1e6) for au, key, pts in units]
    segments = []
    for au, key, pts in units:
        to_memory.write(au, pts, key)
        segments += to_memory.segments()
    to_file.close()
    assert written == [False] * 5 + [True] * 15 and to_file.gate.skipped == 5
    info = probe(tmp_path / "c.mp4")
    assert info.frames == 15 and info.first_keyframe and info.error == ""
    assert to_file.first_ts == 1.0 and abs(to_file.duration - 1.5) < 1e-6
    assert to_memory.init is not None and segments[0].keyframe
    assert decoded_frames(to_memory.init + b"".join(s.data for s in segments)) == 14
