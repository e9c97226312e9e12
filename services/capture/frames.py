"""Pure picture work of the capture service: orient, annotate, derive streams."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from common.config import CaptureConfig

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def turned(config: CaptureConfig) -> bool:
    return bool(config.hflip or config.vflip or config.rotation)


def turn(img: np.ndarray, config: CaptureConfig) -> np.ndarray:
    """Flip and rotate as configured."""
    if config.hflip and config.vflip:
        img = cv2.flip(img, -1)
    elif config.hflip:
        img = cv2.flip(img, 1)
    elif config.vflip:
        img = cv2.flip(img, 0)
    if config.rotation:
        img = cv2.rotate(img, _ROTATE[config.rotation])
    return img


def too_large(width: int, height: int, config: CaptureConfig) -> str:
    """Why capture.width/height cannot be made from a (turned) picture of
    ``width`` x ``height``, or "": pisentry only ever scales down."""
    if config.width is None or (config.width <= width and config.height <= height):
        return ""
    return (f"capture.width/height {config.width}x{config.height} is larger than the camera's "
            f"{width}x{height}: pisentry only scales down; leave them unset to follow the camera")


def orient(img: np.ndarray, config: CaptureConfig) -> np.ndarray:
    """Flip and rotate as configured, then size to the main stream: within
    capture.width x height (when set) with the picture's aspect ratio."""
    img = turn(img, config)
    if config.width is None:
        return img
    size = fit(img.shape[1], img.shape[0], config.width, config.height)
    if (img.shape[1], img.shape[0]) != size:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img


def fit(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The largest even size within ``max_width`` x ``max_height`` (and
    within the picture: never an upscale) with the picture's aspect ratio."""
    scale = min(max_width / width, max_height / height, 1.0)
    return max(2, int(width * scale + 1e-6) & ~1), max(2, int(height * scale + 1e-6) & ~1)


def to_i420(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """The detection stream: small, YUV420 like the Pi camera's lores stream,
    at most ``width`` x ``height`` with the picture's aspect ratio."""
    width, height = fit(bgr.shape[1], bgr.shape[0], width, height)
    small = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2YUV_I420)


def to_lores_gray(gray: np.ndarray, config: CaptureConfig) -> np.ndarray:
    """The detection stream from a (reduced) grey decode: turned as
    configured, at most lores size with the picture's aspect ratio."""
    gray = turn(gray, config)
    size = fit(gray.shape[1], gray.shape[0], config.lores_width, config.lores_height)
    if (gray.shape[1], gray.shape[0]) != size:
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray)


def annotation_text(config: CaptureConfig, ts: float, brightness: float | None) -> str:
    parts = []
    if config.annotate_timestamp:
        parts.append(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)))
    if config.annotate_text:
        parts.append(config.annotate_text)
    if config.annotate_brightness and brightness is not None:
        parts.append(f"light {brightness * 100:.0f}%")
    return "  ".join(parts)


def to_lores_gray_from(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """The detection stream from a full (turned) BGR picture, or from the
    luma plane of a JPEG's own I420 (fresh either way), as the grey
    decode of the camera's JPEG makes it: full-range luma, so detection sees
    the same contrast whether or not someone records (I420 from OpenCV is
    limited range: 14 % less contrast, events a few frames later)."""
    gray = bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)  # grey, then small
    size = fit(gray.shape[1], gray.shape[0], width, height)
    if (gray.shape[1], gray.shape[0]) != size:
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray.copy() if gray is bgr else gray  # the luma is stamped next: not that one


def _layout(h: int) -> tuple[float, int, tuple[int, int]]:
    scale = max(0.35, h / 900)
    thickness = max(1, round(h / 480))
    origin = (max(4, h // 60), h - max(6, h // 40))
    return scale, thickness, origin


def annotate(img: np.ndarray, text: str) -> None:
    """Burn ``text`` into the bottom-left corner, in place, readable on any
    background (white on a dark outline)."""
    if not text:
        return
    scale, thickness, origin = _layout(img.shape[0])
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, text, origin, font, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


class Stamp:
    """``annotate`` for every frame at a fraction of its cost: the text (it
    changes once a second) is drawn once into a small patch of coverages, and
    each frame only blends the pixels of that patch (rasterising the
    anti-aliased outline and text again on every frame cost 0.3-0.8 ms at
    640x480; the blend costs 0.04)."""

    def __init__(self) -> None:
        self._key: tuple[str, tuple[int, ...]] | None = None
        self._where: tuple[slice, slice] = (slice(0, 0), slice(0, 0))
        self._keep = np.zeros((0, 0), np.float32)  # weight of the background
        self._ink = np.zeros((0, 0), np.float32)  # 1 - keep
        self._ink_px = np.zeros((0, 0), np.uint8)  # what the ink blends in
        self._chroma: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, img: np.ndarray, text: str) -> None:
        if not text:
            return
        if self._key != (text, img.shape):
            self._render(text, img.shape)
        rows, cols = self._where
        region = img[rows, cols]
        # blendLinear divides by the sum of the weights: they sum to 1 here.
        region[...] = cv2.blendLinear(region, self._ink_px, self._keep, self._ink)

    def on_i420(self, buf: np.ndarray, text: str) -> None:
        """The same on an I420 frame (``h * 3/2`` x ``w``): the luma as above,
        the chroma under the patch pulled to neutral as much as it is inked,
        so the text is white and black whatever colour it is written over."""
        h, w = buf.shape[0] * 2 // 3, buf.shape[1]
        self(buf[:h], text)
        if not text:
            return
        rows, cols = self._where
        if self._chroma is None:
            keep = cv2.resize(self._keep, ((cols.stop - cols.start) // 2,
                                           (rows.stop - rows.start) // 2),
                              interpolation=cv2.INTER_AREA)
            self._chroma = (keep, 1 - keep, np.full(keep.shape, 128, np.uint8))
        keep, ink, grey = self._chroma
        where = (slice(rows.start // 2, rows.stop // 2), slice(cols.start // 2, cols.stop // 2))
        quarter = h * w // 4
        for start in (h * w, h * w + quarter):  # U, then V, each (h/2) x (w/2)
            plane = buf.reshape(-1)[start:start + quarter].reshape(h // 2, w // 2)
            region = plane[where]
            region[...] = cv2.blendLinear(region, grey, keep, ink)

    def _render(self, text: str, shape: tuple[int, ...]) -> None:
        """Coverage of the outline and of the text as ``annotate``'s two
        anti-aliased passes blend them: out = bg (1 - a1)(1 - a2) + 255 a2,
        i.e. bg keep + ink (1 - keep) with ink = 255 a2 / (1 - keep)."""
        h, w = shape[:2]
        scale, thickness, (ox, oy) = _layout(h)
        font = cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), base = cv2.getTextSize(text, font, scale, thickness + 2)
        pad = thickness + 4
        # Even bounds: the patch maps onto whole pixels of half-size chroma too.
        x0, y0 = max(0, ox - pad) & ~1, max(0, oy - th - pad) & ~1
        x1, y1 = min(w & ~1, (ox + tw + pad + 1) & ~1), min(h & ~1, (oy + base + pad + 1) & ~1)
        dark = np.full((y1 - y0, x1 - x0), 255, np.uint8)
        cv2.putText(dark, text, (ox - x0, oy - y0), font, scale, 0, thickness + 2, cv2.LINE_AA)
        light = np.zeros_like(dark)
        cv2.putText(light, text, (ox - x0, oy - y0), font, scale, 255, thickness, cv2.LINE_AA)
        white = light.astype(np.float32) / 255
        self._keep = dark.astype(np.float32) / 255 * (1 - white)
        self._ink = 1 - self._keep
        ink = np.divide(255 * white, self._ink, out=np.zeros_like(white), where=self._ink > 0)
        ink = np.clip(ink + 0.5, 0, 255).astype(np.uint8)
        self._ink_px = np.ascontiguousarray(
            np.broadcast_to(ink.reshape(ink.shape + (1,) * (len(shape) - 2)),
                            (y1 - y0, x1 - x0, *shape[2:])))
        self._where = (slice(y0, y1), slice(x0, x1))
        self._key = (text, shape)
        self._chroma: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
