"""Pure picture work of the capture service: orient, annotate, derive streams."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from common.config import CaptureConfig

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def orient(img: np.ndarray, config: CaptureConfig) -> np.ndarray:
    """Flip and rotate as configured, then size to the main stream."""
    if config.hflip and config.vflip:
        img = cv2.flip(img, -1)
    elif config.hflip:
        img = cv2.flip(img, 1)
    elif config.vflip:
        img = cv2.flip(img, 0)
    if config.rotation:
        img = cv2.rotate(img, _ROTATE[config.rotation])
    if img.shape[1] != config.width or img.shape[0] != config.height:
        img = cv2.resize(img, (config.width, config.height), interpolation=cv2.INTER_AREA)
    return img


def to_i420(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """The detection stream: small, YUV420 like the Pi camera's lores stream.
    Width and height are rounded down to even numbers, as I420 needs."""
    width, height = width & ~1, height & ~1
    small = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2YUV_I420)


def annotation_text(config: CaptureConfig, ts: float, brightness: float | None) -> str:
    parts = []
    if config.annotate_timestamp:
        parts.append(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)))
    if config.annotate_text:
        parts.append(config.annotate_text)
    if config.annotate_brightness and brightness is not None:
        parts.append(f"light {brightness * 100:.0f}%")
    return "  ".join(parts)


def annotate(img: np.ndarray, text: str) -> None:
    """Burn ``text`` into the bottom-left corner, in place, readable on any
    background (white on a dark outline)."""
    if not text:
        return
    h = img.shape[0]
    scale = max(0.35, h / 900)
    thickness = max(1, round(h / 480))
    origin = (max(4, h // 60), h - max(6, h // 40))
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, text, origin, font, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
