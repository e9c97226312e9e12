"""The real cameras: run on a Raspberry Pi with its camera, or with a USB
webcam plugged in; skipped elsewhere (`-m hardware` selects them)."""

import importlib.util
from pathlib import Path

import pytest

from common.config import parse_config
from services.capture.sources import make_source

pytestmark = pytest.mark.hardware


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is None,
                    reason="no picamera2 (Raspberry Pi OS with python3-picamera2 only)")
def test_pi_camera_gives_main_lores_and_h264():
    config = parse_config({"capture": {"source": "picamera2", "width": 1280, "height": 720,
                                       "fps": 15}}).capture
    source = make_source(config)
    source.open()
    try:
        frames = [source.read() for _ in range(30)]
        assert frames[-1].bgr.shape == (720, 1280, 3)
        assert frames[-1].lores_yuv is not None
        assert frames[-1].lores_yuv.shape[1] == config.lores_width
        packets = []
        while not source.packets.empty():
            packets.append(source.packets.get_nowait())
        assert packets and packets[0][0][:4] == b"\x00\x00\x00\x01"
        assert any(key for _, key, _ in packets)
    finally:
        source.close()


@pytest.mark.skipif(not Path("/dev/video0").exists(), reason="no /dev/video0 webcam")
def test_usb_webcam_gives_frames():
    config = parse_config({"capture": {"source": "v4l2", "device": 0}}).capture
    source = make_source(config)
    source.open()
    try:
        frame = source.read()
        assert frame.bgr.ndim == 3 and frame.bgr.size > 0
    finally:
        source.close()
