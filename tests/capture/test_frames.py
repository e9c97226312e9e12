"""The capture service's picture helpers, on real pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.capture import frames as pictures

TEXT = "2026-12-03 13:47:07  light 50%"


@pytest.mark.parametrize("shape", [(480, 640, 3), (720, 1280, 3), (240, 320)])
def test_the_cached_stamp_burns_what_annotate_burns_and_nothing_else(shape):
    rng = np.random.default_rng(1)
    background = rng.integers(0, 256, shape, dtype=np.uint8)
    drawn = background.copy()
    pictures.annotate(drawn, TEXT)
    stamped = background.copy()
    stamp = pictures.Stamp()
    stamp(stamped, TEXT)
    # The anti-aliased edges round a little differently; the text is the same.
    assert np.abs(drawn.astype(int) - stamped.astype(int)).max() <= 6
    changed = np.argwhere((stamped != background).reshape(shape[:2] + (-1,)).any(-1))
    assert changed.size and changed[:, 0].min() > shape[0] * 0.8  # the bottom band only
    # A second frame with the same text: the same patch, on its own pixels.
    again = background.copy()
    stamp(again, TEXT)
    assert np.array_equal(again, stamped)
    stamp(again, TEXT.replace("07", "08"))  # the next second: drawn anew
    assert not np.array_equal(again, stamped)


def test_grey_lores_from_a_decoded_picture_is_full_range_like_the_jpeg_luma():
    rng = np.random.default_rng(2)
    bgr = cv2.resize(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (640, 480),
                     interpolation=cv2.INTER_NEAREST)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    luma = cv2.imdecode(jpeg, cv2.IMREAD_REDUCED_GRAYSCALE_2)
    lores = pictures.to_lores_gray_from(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), 320, 240)
    assert lores.shape == luma.shape == (240, 320)
    assert abs(float(lores.std()) - float(luma.std())) < 0.03 * float(luma.std())
    assert abs(float(lores.mean()) - float(luma.mean())) < 2
