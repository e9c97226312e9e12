"""Software h264 with PyAV's libx264, for every source but the Pi camera.

ultrafast + zerolatency: one access unit out per frame in, no lookahead, so
the recorder and the live view see a frame as soon as it is captured. A
keyframe every ``keyframe_interval`` seconds, no scene-cut keyframes (GOPs are
what the recorder's pre-roll counts), and SPS/PPS repeated before every
keyframe so a late subscriber can start at the next one.
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

US = 1_000_000


class H264Encoder:
    def __init__(self, width: int, height: int, fps: float, keyframe_interval: float = 1.0,
                 bitrate: int = 2_000_000, full_range: bool = False) -> None:
        import av

        gop = max(1, round(fps * keyframe_interval))
        self._ctx = av.CodecContext.create("libx264", "w")
        self._ctx.width, self._ctx.height = width, height
        self._ctx.pix_fmt = "yuv420p"
        if full_range:  # a JPEG's own YCbCr, said so in the stream (VUI), as it is
            self._ctx.color_range = av.video.reformatter.ColorRange.JPEG
        self._ctx.time_base = Fraction(1, US)
        self._ctx.framerate = Fraction(fps).limit_denominator(1000)
        self._ctx.gop_size = gop
        self._ctx.bit_rate = bitrate
        self._ctx.thread_count = 1  # a Pi has few cores and other services need them
        self._ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1",
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
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        return [(bytes(p), bool(p.is_keyframe)) for p in self._ctx.encode(frame)]

    def close(self) -> list[tuple[bytes, bool]]:
        return [(bytes(p), bool(p.is_keyframe)) for p in self._ctx.encode(None)]
