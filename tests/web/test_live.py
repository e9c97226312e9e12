"""The live hub: encode once for every viewer, never with none."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from services.web.live import LINGER_SECONDS, LiveChannel, to_pixels


def frame(value: int) -> np.ndarray:
    img = np.full((480, 640, 3), value, np.uint8)
    cv2.putText(img, str(value), (50, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 5)
    return img


def test_no_viewer_no_encoding() -> None:
    ch = LiveChannel("cam1")
    for i in range(50):
        ch.push(frame(i), float(i))
    assert ch.encoded_count == 0 and ch.frames_in == 50


def test_a_camera_jpeg_is_handed_out_as_it_is() -> None:
    ch = LiveChannel("cam1")
    jpeg = cv2.imencode(".jpg", frame(7))[1].tobytes()
    ch.push_jpeg(jpeg, 640, 480, 7.0)
    got = ch.latest()
    assert got is not None and got.jpeg == jpeg and got.part.endswith(jpeg + b"\r\n")
    assert (ch.width, ch.height, ch.encoded_count) == (640, 480, 0)
    ch.push(frame(8), 8.0)  # a raw frame after it is encoded again, once
    got = ch.latest()
    assert got is not None and got.jpeg != jpeg and ch.encoded_count == 1


def test_many_viewers_share_one_encoding_per_frame() -> None:
    async def scenario() -> tuple[LiveChannel, list[list[bytes]]]:
        ch = LiveChannel("cam1")
        got: list[list[bytes]] = [[] for _ in range(20)]

        async def viewer(i: int) -> None:
            seq = 0
            with ch.watch():
                for _ in range(3):
                    enc = await ch.next(seq, timeout=2)
                    assert enc is not None
                    seq = enc.seq
                    got[i].append(enc.jpeg)

        tasks = [asyncio.create_task(viewer(i)) for i in range(20)]
        for i in range(3):
            await asyncio.sleep(0.02)
            ch.push(frame(40 * i), float(i))
        await asyncio.gather(*tasks)
        return ch, got

    ch, got = asyncio.run(scenario())
    assert ch.encoded_count == 3  # not 60
    assert all(g == got[0] for g in got) and len(set(got[0])) == 3
    decoded = cv2.imdecode(np.frombuffer(got[0][2], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (480, 640, 3) and abs(int(decoded[5, 5, 0]) - 80) < 4


def test_next_times_out_without_frames() -> None:
    assert asyncio.run(LiveChannel("c").next(0, timeout=0.05)) is None


def test_wanted_follows_viewers_with_linger() -> None:
    now = [100.0]
    ch = LiveChannel("cam1", clock=lambda: now[0])
    assert not ch.wanted()
    with ch.watch():
        assert ch.wanted()
    now[0] += LINGER_SECONDS - 0.1
    assert ch.wanted()  # a reload right after leaving keeps the frames coming
    now[0] += 0.2
    assert not ch.wanted()


def test_to_pixels_formats_and_errors() -> None:
    bgr = np.arange(4 * 6 * 3, dtype=np.uint8)
    assert to_pixels("bgr24", 6, 4, memoryview(bgr.tobytes())).shape == (4, 6, 3)
    assert to_pixels("gray", 6, 4, bytes(24)).shape == (4, 6)
    assert to_pixels("yuv420", 8, 4, bytes(48)).shape == (4, 8, 3)
    with pytest.raises(ValueError, match="needs 72 bytes"):
        to_pixels("bgr24", 6, 4, bytes(10))
    with pytest.raises(ValueError, match="unsupported"):
        to_pixels("rgb565", 6, 4, bytes(48))


def test_next_waits_when_there_is_no_frame_yet() -> None:
    """A viewer arriving before the first frame must wait, not spin the loop."""
    async def scenario() -> tuple[float, object]:
        ch = LiveChannel("c")
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, ch.push, frame(1), 1.0)
        t0 = loop.time()
        enc = await ch.next(-1, timeout=2)
        return loop.time() - t0, enc

    waited, enc = asyncio.run(scenario())
    assert enc is not None and waited >= 0.09


def test_a_stale_frame_is_not_handed_to_a_new_viewer() -> None:
    now = [100.0]
    ch = LiveChannel("cam1", clock=lambda: now[0])

    async def scenario() -> object:
        ch.push(frame(1), 1.0)
        now[0] += 30  # frames were off for a while
        return await ch.next(-1, timeout=0.05)

    assert asyncio.run(scenario()) is None
