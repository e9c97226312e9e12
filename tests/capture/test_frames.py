"""The capture service's picture helpers, on real pixels."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from services.capture import frames as pictures
from services.capture import jpeg as jpegs
from services.capture.encoder import H264Encoder

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


def _jpeg(bgr):
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return jpeg.tobytes()


def test_the_stamp_on_i420_inks_the_luma_and_greys_the_chroma_under_it():
    blue = np.zeros((480, 640, 3), np.uint8)
    blue[:] = (200, 60, 20)
    i420 = jpegs.YuvDecoder().decode(_jpeg(blue))
    before = i420.copy()
    stamp = pictures.Stamp()
    stamp.on_i420(i420, TEXT)
    luma = before[:480].copy()
    pictures.Stamp()(luma, TEXT)
    assert np.array_equal(i420[:480], luma)
    inked = np.argwhere(np.abs(luma.astype(int) - before[:480]) > 100)  # solid text pixels
    assert len(inked)
    u = i420[480:600].reshape(240, 320)
    v = i420[600:].reshape(240, 320)
    ys, xs = inked[:, 0] // 2, inked[:, 1] // 2
    # Neutral under solid ink (the sky's blue was far from 128), untouched elsewhere.
    assert np.median(np.abs(u[ys, xs].astype(int) - 128)) < 20
    assert np.median(np.abs(v[ys, xs].astype(int) - 128)) < 20
    assert np.array_equal(u[:200], before[480:600].reshape(240, 320)[:200])


def test_a_jpeg_encoded_from_its_own_i420_plays_back_with_its_colours_and_contrast():
    rng = np.random.default_rng(3)
    picture = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (320, 240),
                         interpolation=cv2.INTER_LINEAR)
    i420 = jpegs.YuvDecoder().decode(_jpeg(picture))
    encoder = H264Encoder(320, 240, 10, full_range=True)
    units = encoder.encode_i420(i420, 0, keyframe=True) + encoder.close()
    decoder = av.CodecContext.create("h264", "r")
    frames = list(decoder.decode(av.Packet(b"".join(u for u, _ in units)))) + \
        list(decoder.decode(None))
    played = frames[0].to_ndarray(format="bgr24").astype(int)
    assert np.abs(played - picture).mean() < 4
    # Read as limited range, the picture would come back 16 % more contrasted.
    assert abs(played.std() - picture.std()) < 0.03 * picture.std()
