"""An uploaded mask image turned into the polygons ``detect.masks`` holds.

The image means what ``detect.mask_image`` means: black (below 128) is
ignored. Each black region's outline becomes one normalised polygon,
simplified until it fits the schema's 64 corners; specks are dropped. A white
island inside a black region is lost (the outline covers it), which errs on
the side of ignoring more. The editor shows the result before anything is
saved.
"""

from __future__ import annotations

MAX_CORNERS = 64
MAX_POLYGONS = 32
MIN_REGION = 0.001  # of the image: smaller black specks are noise from scaling or JPEG


class MaskImageError(ValueError):
    pass


def mask_polygons(data: bytes) -> list[list[list[float]]]:
    """Normalised polygons of the black regions of an image file's bytes."""
    import cv2
    import numpy as np

    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error:  # an empty buffer, for one
        img = None
    if img is None:
        raise MaskImageError("not an image OpenCV can read (PNG, JPEG, BMP ...)")
    h, w = img.shape
    if w < 8 or h < 8:
        raise MaskImageError(f"the image is {w}x{h}; at least 8x8")
    black = np.where(img < 128, 255, 0).astype(np.uint8)
    contours, _ = cv2.findContours(black, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted((c for c in contours if cv2.contourArea(c) >= MIN_REGION * w * h),
                      key=cv2.contourArea, reverse=True)[:MAX_POLYGONS]
    polygons = []
    for contour in contours:
        epsilon = 0.002 * cv2.arcLength(contour, True)
        corners = cv2.approxPolyDP(contour, epsilon, True)
        while len(corners) > MAX_CORNERS:
            epsilon *= 1.5
            corners = cv2.approxPolyDP(contour, epsilon, True)
        if len(corners) < 3:
            continue
        polygons.append([[round(float(x) / (w - 1), 4), round(float(y) / (h - 1), 4)]
                         for x, y in corners[:, 0, :]])
    return polygons
