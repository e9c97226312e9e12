"""h264 live: the camera's access units remuxed to fMP4, shared by viewers,
each starting at a keyframe; checked by decoding what a viewer would get."""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np
import pytest

from common.fmp4 import Fmp4Writer
from services.capture.encoder import H264Encoder
from services.web.h264live import H264Channel, codec_string


def access_units(n: int, start_pts: int = 0) -> list[tuple[bytes, bool, int]]:
    enc = H264Encoder(320, 240, 10, keyframe_interval=1.0)
    out = []
    for i in range(n):
        img = np.full((240, 320, 3), (i * 9) % 256, np.uint8)
        pts = start_pts + i * 100_000
        out += [(au, key, pts) for au, key in enc.encode(img, pts)]
    return out


def decoded_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_muxer_makes_playable_fmp4_that_a_late_viewer_can_join() -> None:
    units = access_units(25)
    mux = Fmp4Writer(None, 320, 240, 10)
    segments = []
    for au, key, pts in units:
        mux.write(au, pts, key)
        segments += mux.segments()
    assert mux.init and mux.init[4:8] == b"ftyp"
    assert len(segments) == 24  # each unit's fragment comes out with the next unit
    assert [i for i, s in enumerate(segments) if s.keyframe] == [0, 10, 20]
    assert decoded_frames(mux.init + b"".join(s.data for s in segments)) == 24
    assert decoded_frames(mux.init + b"".join(s.data for s in segments[10:])) == 14


def test_codec_string_from_sps() -> None:
    au, key, _ = access_units(1)[0]
    assert key and codec_string(au).startswith("avc1.42")  # ultrafast: baseline
    with pytest.raises(ValueError, match="no SPS"):
        codec_string(b"\x00\x00\x01\x41abc")


def test_channel_fans_out_from_keyframes_and_restarts_on_a_jump() -> None:
    async def scenario() -> None:
        ch = H264Channel("cam1", clock=lambda: 0.0)
        early = ch.join()
        waiter = asyncio.create_task(ch.ready(2.0))  # a viewer waiting before any video
        await asyncio.sleep(0)
        units = access_units(25)
        for au, key, pts in units[:15]:
            ch.push(au, pts, key, 320, 240, 10.0)
        assert await waiter and ch.codec.startswith("avc1.")
        late = ch.join()  # joins mid-GOP: gets nothing until the next keyframe
        for au, key, pts in units[15:]:
            ch.push(au, pts, key, 320, 240, 10.0)
        got_early = [early.get_nowait() for _ in range(early.qsize())]
        got_late = [late.get_nowait() for _ in range(late.qsize())]
        assert len(got_early) == 24 and got_early[0].keyframe
        assert got_late[0].keyframe and len(got_late) == 4  # units 20..23
        data = ch.init + b"".join(s.data for s in got_late)
        assert decoded_frames(data) == 4
        # the producer restarts (pts back to 0): viewers are told to start again
        generation = ch.generation
        for au, key, pts in access_units(3):
            ch.push(au, pts, key, 320, 240, 10.0)
        assert ch.generation == generation + 1
        assert None in [early.get_nowait() for _ in range(early.qsize())]
        ch.leave(early)
        ch.leave(late)
        assert not ch.wanted()

    asyncio.run(scenario())
