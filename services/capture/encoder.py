"""Software h264 with PyAV's libx264, for every source but the Pi camera.

ultrafast + zerolatency: one access unit out per frame in, no lookahead, so
the recorder and the live view see a frame as soon as it is captured. A
keyframe every ``keyframe_interval`` seconds of the frames' own timestamps
(the frame nearest each interval), not every N frames counted from the rate
assumed at the start: a camera that sends more or fewer frames than said
(a url camera at 30 fps configured for 15, a rate that sags in the dark)
still gets a keyframe a second. No scene-cut keyframes (GOPs are what the
pre-roll rings count), and SPS/PPS repeated before every keyframe so a late
subscriber can start at the next one.

Rate control is a constant quality (CRF) capped at ``bitrate`` (VBV, one
second of buffer), not an average bitrate: x264's cost grows with the bits it
writes, and a security camera's picture is mostly still. Highway 640x480 @30,
offline (bench/notes.md, "Issue 12: capture per-frame cost and recording
path"): 2 Mbit/s average 1.26 ms a frame, PSNR-Y 41.1 dB, 2.16 Mbit/s; CRF 26
capped at 2 Mbit/s 1.03 ms, 38.6 dB (as 1 Mbit/s average: 1.03 ms, 38.6 dB),
1.07 Mbit/s. A busy picture still gets up to ``bitrate``.
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

US = 1_000_000
# x264's quality scale (0-51, lower is better, 23 its default); 26 keeps a
# 640x480 clip's plates and faces as the 2 Mbit/s average did to the eye, at
# half the bits (see the module docstring).
CRF = 26


class H264Encoder:
    def __init__(self, width: int, height: int, fps: float, keyframe_interval: float = 1.0,
                 bitrate: int = 2_000_000, full_range: bool = False) -> None:
        import av

        # x264 is told no interval of its own: the keyframes are asked for here.
        gop = max(1, round(fps * keyframe_interval))
        self._key_us = round(keyframe_interval * US)
        self._last_key: int | None = None  # pts of the last keyframe
        self._last_pts: int | None = None
        self._ctx = av.CodecContext.create("libx264", "w")
        self._ctx.width, self._ctx.height = width, height
        self._ctx.pix_fmt = "yuv420p"
        if full_range:  # a JPEG's own YCbCr, said so in the stream (VUI), as it is
            self._ctx.color_range = av.video.reformatter.ColorRange.JPEG
        self._ctx.time_base = Fraction(1, US)
        self._ctx.framerate = Fraction(fps).limit_denominator(1000)
        self._ctx.gop_size = gop * 100  # a bound libavcodec wants; keyint below rules
        kbit = max(1, bitrate // 1000)
        self._ctx.thread_count = 1  # a Pi has few cores and other services need them
        self._ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "crf": str(CRF),
            "x264-params": "keyint=infinite:min-keyint=1:scenecut=0:repeat-headers=1"
                           f":vbv-maxrate={kbit}:vbv-bufsize={kbit}",
            "forced-idr": "1",  # an asked-for keyframe is an IDR: a stream can start there
        }
        self.width, self.height, self.fps = width, height, fps
        self.full_range = full_range

    def encode(self, bgr: np.ndarray, pts_us: int, keyframe: bool = False
               ) -> list[tuple[bytes, bool]]:
        """Access units (Annex-B bytes, is_keyframe) for one BGR frame, a
        keyframe (IDR) when asked; the bytes are owned by the caller and
        safe to send zero-copy."""
        # OpenCV's BGR->I420 takes a third of the time of FFmpeg's swscale here,
        # and x264 reads (copies) its planes in place: no further frame buffer.
        return self.encode_i420(np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), np.uint8),
                                pts_us, keyframe)

    def encode_i420(self, i420: np.ndarray, pts_us: int, keyframe: bool = False
                    ) -> list[tuple[bytes, bool]]:
        """As ``encode``, for a frame already in I420 (``height * 3/2`` x
        ``width``; full range for an encoder made ``full_range``)."""
        import av

        frame = av.VideoFrame.from_numpy_buffer(i420, format="yuv420p")
        frame.pts = pts_us
        if keyframe or self._key_due(pts_us):
            frame.pict_type = av.video.frame.PictureType.I
        units = [(bytes(p), bool(p.is_keyframe)) for p in self._ctx.encode(frame)]
        if any(key for _, key in units):  # zerolatency: this frame's own unit
            self._last_key = pts_us
        return units

    def _key_due(self, pts_us: int) -> bool:
        """Whether this frame is the one nearest the next interval's end
        (half a frame early is nearer than half a frame late)."""
        last, self._last_pts = self._last_pts, pts_us
        if self._last_key is None:
            return True
        half_frame = (pts_us - last) // 2 if last is not None else 0
        return pts_us - self._last_key + half_frame >= self._key_us

    def close(self) -> list[tuple[bytes, bool]]:
        return [(bytes(p), bool(p.is_keyframe)) for p in self._ctx.encode(None)]
