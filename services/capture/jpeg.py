"""The camera's own JPEGs: their size, and decodes that do only what is needed.

libjpeg-turbo scales a JPEG by 1/2, 1/4 or 1/8 while decoding (in the DCT
domain, before the colour conversion), and decodes the luma alone for grey:
detection's lores frame costs a fraction of a full BGR decode.
"""

from __future__ import annotations

import cv2
import numpy as np

_REDUCED_GRAY = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
                 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
# Start-of-frame markers (baseline, extended, progressive, lossless...): they
# all carry the picture's height and width at the same offsets.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class JpegError(ValueError):
    pass


def jpeg_size(jpeg: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from the JPEG's frame header, without decoding."""
    data = memoryview(jpeg)
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise JpegError("not a JPEG (no start-of-image marker)")
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            raise JpegError(f"corrupt JPEG (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            height = data[i + 5] << 8 | data[i + 6]
            width = data[i + 7] << 8 | data[i + 8]
            if width and height:
                return width, height
            raise JpegError("JPEG without a size")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + (data[i + 2] << 8 | data[i + 3])
    raise JpegError("JPEG without a frame header")


def decode_bgr(jpeg: bytes | memoryview) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise JpegError("JPEG does not decode")
    return img


class YuvDecoder:
    """A JPEG decoded to I420 (``h * 3/2`` x ``w``: Y, then U, then V) in its
    own full-range YCbCr, with no colour conversion at all: what the h264
    encoder takes (a BGR decode and the encoder's BGR->I420 cost a third
    more). FFmpeg's decoder, one thread: a Pi's other cores are detect's."""

    def __init__(self) -> None:
        import av

        self._av = av
        self._codec = av.CodecContext.create("mjpeg", "r")
        self._codec.thread_count = 1

    def decode(self, jpeg: bytes | memoryview) -> np.ndarray:
        try:
            frames = self._codec.decode(self._av.Packet(bytes(jpeg)))
        except self._av.error.FFmpegError as exc:
            raise JpegError(f"JPEG does not decode ({exc})") from None
        if not frames or frames[0].width % 2 or frames[0].height % 2:
            raise JpegError("JPEG does not decode to an even-sized picture")
        frame = frames[0]
        if frame.format.name != "yuvj420p":  # a 4:2:2 or 4:4:4 camera: to 4:2:0, range kept
            return frame.to_ndarray(format="yuvj420p")
        return frame.to_ndarray()


def reduction(width: int, height: int, out_width: int, out_height: int) -> int:
    """The largest DCT scale (1, 2, 4 or 8) that still leaves at least
    ``out_width`` x ``out_height`` pixels: only ever a downscale."""
    scale = 8
    while scale > 1 and (width // scale < out_width or height // scale < out_height):
        scale //= 2
    return scale


def decode_gray(jpeg: bytes | memoryview, scale: int) -> np.ndarray:
    """The luma alone, decoded at 1/``scale`` of the picture's size."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED_GRAY[scale])
    if img is None:
        raise JpegError("JPEG does not decode")
    return img
