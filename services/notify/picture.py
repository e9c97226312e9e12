"""A JPEG from a raw bus frame, for ``/snapshot``.

notify takes the picture itself from the live stream (``frame/live/``), so
``/snapshot`` works whether or not detect is running. cv2 is imported here
only, when the first picture is asked for: the service stays light otherwise.
"""

from __future__ import annotations

from typing import Any


def frame_to_jpeg(header: Any, pixels: memoryview | bytes, quality: int = 85) -> bytes:
    """Encode one ``Frame``/``LiveFrame`` payload (bgr24, gray or yuv420;
    a jpeg payload is already the picture)."""
    if header.format == "jpeg":
        return bytes(pixels)
    import cv2
    import numpy as np

    data = np.frombuffer(pixels, np.uint8)
    w, h = header.width, header.height
    if header.format == "bgr24":
        img = data[: w * h * 3].reshape(h, w, 3)
    elif header.format == "gray":
        img = data[: w * h].reshape(h, w)
    elif header.format == "yuv420":
        img = cv2.cvtColor(data[: w * h * 3 // 2].reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_I420)
    else:
        raise ValueError(f"cannot make a picture of a {header.format!r} frame")
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())
