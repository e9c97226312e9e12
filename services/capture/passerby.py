"""The self-test's passer-by: a person-sized figure drawn into the live
frames for a few seconds, whatever the camera sees, so the run can follow a
known event through detect, record, notify and the NAS.

Drawn into the main picture before the detection stream is made from it, so
detect, the clip and the live view all show it. A camera that makes its own
detection stream (picamera2's lores) would not see it: the test then fails
at its first stage, which is what it is for.
"""

from __future__ import annotations

import cv2
import numpy as np


class PasserBy:
    def __init__(self) -> None:
        self.start = 0.0
        self.until = 0.0

    def walk(self, now: float, seconds: float) -> None:
        self.start, self.until = now, now + seconds

    def walking(self, ts: float) -> bool:
        return self.start <= ts < self.until

    def draw(self, img: np.ndarray, ts: float) -> bool:
        """Draw the figure where it is at ``ts``; False when no walk is on."""
        if not self.walking(ts):
            return False
        h, w = img.shape[:2]
        progress = (ts - self.start) / (self.until - self.start)
        fh = int(h * 0.4)
        fw = max(6, fh // 3)
        x = int(-fw + progress * (w + fw))
        y = int(h * 0.85) - fh
        # Dark against most scenes, with a bright edge against dark ones.
        cv2.rectangle(img, (x, y + fh // 5), (x + fw, y + fh), (25, 25, 25), -1)
        cv2.circle(img, (x + fw // 2, y + fh // 10), max(3, fh // 10), (25, 25, 25), -1)
        cv2.rectangle(img, (x, y + fh // 5), (x + fw, y + fh), (235, 235, 235), 2)
        return True
