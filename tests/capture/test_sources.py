"""Capture sources with real data: footage from shared/eval, a real MJPEG server."""

import ast
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.config import parse_config
from services.capture import frames as pictures
from services.capture.reader import SourceReader
from services.capture.sources import SourceError, make_source
from services.capture.sources.synthetic import CROSSING_SECONDS, SyntheticSource
from tests.capture.mjpeg_server import MjpegCamera
from tests.support import EVAL

ROOT = Path(__file__).resolve().parents[2]
TREES = EVAL / "wallflower_wavingtrees"
needs_eval = pytest.mark.skipif(not TREES.is_dir(), reason="shared/eval footage not present")


def _capture_config(**kw):
    return parse_config({"capture": kw}).capture


def _tree_images():
    return sorted(TREES.glob("b*.bmp"))


def _next_frame(reader, timeout=10.0):
    assert reader.frames.wait(timeout), "no frame"
    return reader.frames.take()[-1]


@needs_eval
def test_url_source_reads_a_real_mjpeg_camera_and_reconnects_after_it_restarts():
    originals = [cv2.imread(str(p)) for p in _tree_images()[:40]]
    jpegs = [cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
             for img in originals]
    camera = MjpegCamera(jpegs, fps=20).start()
    source = make_source(_capture_config(source="url", url=camera.url,
                                         reconnect_max_seconds=1))
    reader = SourceReader(source, max_backoff=1.0)
    reader.start()
    try:
        got = _next_frame(reader)
        # The camera's own JPEG, byte for byte: nothing decoded on the way.
        assert got.bgr is None and got.jpeg in jpegs
        assert got.picture().shape == originals[0].shape
        # It is the footage, not just any picture.
        best = min(np.abs(got.picture().astype(int) - o.astype(int)).mean() for o in originals)
        assert best < 6
        port = camera.port
        camera.stop()
        deadline = time.monotonic() + 10
        while reader.state != "reconnecting" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.state == "reconnecting"
        reader.frames.take()
        camera = MjpegCamera(jpegs, fps=20, port=port).start()
        got = _next_frame(reader, timeout=15)
        assert got.picture().shape == originals[0].shape
        assert reader.reconnects >= 1 and reader.state == "streaming"
    finally:
        reader.stop()
        camera.stop()


def test_url_source_without_url_is_a_clear_error():
    with pytest.raises(SourceError, match="capture.url is empty"):
        make_source(_capture_config(source="url"))


@needs_eval
def test_file_source_plays_a_folder_of_images_in_name_order_and_loops(tmp_path):
    images = _tree_images()[240:245]
    for i, image in enumerate(reversed(images)):  # names, not file times, give the order
        (tmp_path / f"img{4 - i:03d}.bmp").write_bytes(image.read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    source = make_source(_capture_config(source="file", path=str(tmp_path), file_fps=120))
    source.open()
    expected = [cv2.imread(str(p)) for p in images]
    got = [source.read().bgr for _ in range(7)]
    for frame, want in zip(got, expected + expected[:2]):
        assert np.array_equal(frame, want)


def test_file_source_plays_a_video_file(tmp_path):
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            img = np.full((48, 64, 3), i * 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    source = make_source(_capture_config(source="file", path=str(path), file_fps=120))
    source.open()
    means = [source.read().bgr.mean() for _ in range(12)]
    assert means[1] > means[0] and abs(means[10] - means[0]) < 5  # in order, then looped


@pytest.mark.parametrize("path, problem", [("", "capture.path is empty"),
                                           ("/nonexistent/x", "no such file or folder")])
def test_file_source_bad_path_is_a_clear_error(path, problem):
    source = make_source(_capture_config(source="file", path=path))
    with pytest.raises(SourceError, match=problem):
        source.open()


def test_synthetic_scene_has_a_person_crossing_then_nothing():
    config = _capture_config(width=320, height=240, fps=30, object_period=20)
    source = SyntheticSource(config)
    source.open()
    assert source.person_box(CROSSING_SECONDS / 2) is not None
    assert source.person_box(CROSSING_SECONDS + 1) is None
    x, _, w, h = source.person_box(CROSSING_SECONDS / 2)
    assert 0.2 < h / 240 < 0.5 and 0 < x < 320
    source._t0 = time.monotonic() - CROSSING_SECONDS / 2
    with_person = source.read().bgr
    source._t0 = time.monotonic() - CROSSING_SECONDS - 2
    empty = source.read().bgr
    diff = np.abs(with_person.astype(int) - empty.astype(int)).max(axis=2) > 40
    _, xs = np.nonzero(diff)
    assert diff.mean() > 0.01
    assert xs.min() >= x - 2 and xs.max() <= x + w + 2  # the change is the person


def test_orientation_flips_rotates_and_sizes():
    img = np.zeros((64, 96, 3), np.uint8)
    img[0, 0] = 255
    config = _capture_config(width=64, height=96, rotation=90, hflip=True)
    out = pictures.orient(img, config)
    assert out.shape == (96, 64, 3)
    # hflip moves the dot to the top right, rotating clockwise takes it to the bottom right
    assert out[-1, -1].max() == 255


def test_lores_is_i420_with_the_picture_in_its_luma():
    bgr = np.zeros((480, 640, 3), np.uint8)
    bgr[:, 320:] = 255
    yuv = pictures.to_i420(bgr, 320, 240)
    assert yuv.shape == (360, 320)
    luma = yuv[:240]
    assert luma[:, :150].mean() < 20 and luma[:, 170:].mean() > 230


def test_h264_encoder_keeps_the_picture_and_its_colours():
    import av

    from services.capture.encoder import H264Encoder

    bgr = np.zeros((240, 320, 3), np.uint8)
    bgr[:, :160] = (255, 0, 0)  # blue left half
    bgr[:, 160:] = (0, 0, 255)  # red right half
    encoder = H264Encoder(320, 240, 10, bitrate=1_000_000)
    units = encoder.encode(bgr, 0) + encoder.close()
    assert units and units[0][1], "the first access unit is a keyframe"
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for unit, _ in units for f in decoder.decode(av.Packet(unit))]
    frames += decoder.decode(None)
    out = frames[0].to_ndarray(format="bgr24").astype(int)
    assert np.abs(out[:, :150].mean(axis=(0, 1)) - (255, 0, 0)).max() < 20
    assert np.abs(out[:, 170:].mean(axis=(0, 1)) - (0, 0, 255)).max() < 20


def _jpeg(img, quality=90):
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


@needs_eval
@pytest.mark.parametrize("size", [(640, 480), (720, 480), (1280, 720), (320, 240)])
def test_lores_from_a_camera_jpeg_is_its_grey_picture_reduced_in_the_decoder(size):
    from services.capture import jpeg

    picture = cv2.resize(cv2.imread(str(_tree_images()[250])), size)
    data = _jpeg(picture)
    assert jpeg.jpeg_size(data) == size
    config = _capture_config(lores_width=320, lores_height=240)
    lw, lh = pictures.fit(*size, 320, 240)
    scale = jpeg.reduction(*size, lw, lh)
    assert size[0] // scale >= lw and (scale == 8 or size[0] // (2 * scale) < lw)
    gray = pictures.to_lores_gray(jpeg.decode_gray(data, scale), config)
    # the camera's aspect ratio, never stretched: 720x480 -> 320x212, 16:9 -> 320x180
    assert gray.shape == (lh, lw)
    assert abs(lw / lh - size[0] / size[1]) < 0.02
    full = cv2.resize(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY), (lw, lh),
                      interpolation=cv2.INTER_AREA)
    assert np.abs(gray.astype(int) - full.astype(int)).mean() < 4


def test_lores_from_a_jpeg_is_turned_like_the_main_stream():
    from services.capture import jpeg

    img = np.zeros((480, 640, 3), np.uint8)
    img[:40, :40] = 255  # top left
    config = _capture_config(rotation=90, width=480, height=640)
    gray = pictures.to_lores_gray(jpeg.decode_gray(_jpeg(img), 2), config)
    assert gray.shape == (240, 180)  # portrait now, within the 320x240 lores box
    main = cv2.cvtColor(pictures.orient(img, config), cv2.COLOR_BGR2GRAY)
    small = cv2.resize(main, (180, 240), interpolation=cv2.INTER_AREA)
    assert np.abs(gray.astype(int) - small.astype(int)).mean() < 4


def test_a_broken_jpeg_is_a_jpeg_error_not_a_crash():
    from services.capture import jpeg

    with pytest.raises(jpeg.JpegError, match="not a JPEG"):
        jpeg.jpeg_size(b"<html>proxy error</html>")
    good = _jpeg(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(jpeg.JpegError):
        jpeg.decode_gray(good[:20], 1)


def test_lores_size_keeps_the_aspect_ratio_and_never_upscales():
    assert pictures.fit(640, 480, 320, 240) == (320, 240)
    assert pictures.fit(1280, 720, 320, 240) == (320, 180)
    assert pictures.fit(720, 480, 320, 240) == (320, 212)
    assert pictures.fit(160, 120, 320, 240) == (160, 120)
    assert pictures.to_i420(np.zeros((720, 1280, 3), np.uint8), 320, 240).shape == (270, 320)


@pytest.mark.parametrize(("camera_fps", "fps", "kept"), [(30, 15, 0.5), (30, 30, 1.0),
                                                         (15, 15, 1.0), (30, 10, 1 / 3)])
def test_capture_fps_caps_a_faster_camera_evenly(camera_fps, fps, kept):
    from services.capture.sources import RateLimit

    rng = np.random.default_rng(1)
    limit = RateLimit(fps)
    times = np.arange(300) / camera_fps + rng.normal(0, 0.002, 300)  # camera jitter
    taken = [t for t in times if limit.take(float(t))]
    assert abs(len(taken) / len(times) - kept) < 0.02
    gaps = np.diff(taken)
    assert gaps.min() > 0.6 / fps  # evenly spread, not in bursts


def _jpegs(count=10):
    return [cv2.imencode(".jpg", cv2.imread(str(p)), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            for p in _tree_images()[:count]]


@needs_eval
@pytest.mark.parametrize("lengths", [True, False])
def test_an_mjpeg_camera_is_read_without_ffmpeg_parts_with_or_without_a_length(lengths):
    """Its JPEGs byte for byte, its size learnt at open, and neither PyAV nor
    ssl loaded (a process of its own: this one has loaded them for others)."""
    jpegs = _jpegs()
    camera = MjpegCamera(jpegs, fps=30, lengths=lengths, basic_auth="admin:s3cr:t").start()
    script = (
        "import sys\n"
        "from common.config import parse_config\n"
        "from services.capture.sources import make_source\n"
        f"url = 'http://admin:s3cr%3At@127.0.0.1:{camera.port}/stream.mjpg'\n"
        "source = make_source(parse_config({'capture': {'source': 'url', 'url': url}}).capture)\n"
        "source.open()\n"
        "got = [source.read().jpeg for _ in range(12)]\n"
        "source.close()\n"
        "print(repr((source.size, [g.hex() for g in got],\n"
        "            [m for m in ('av', 'ssl', 'http.client') if m in sys.modules])))\n")
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=60, cwd=ROOT, check=False)
    finally:
        camera.stop()
    assert out.returncode == 0, out.stderr
    size, got, loaded = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    got = [bytes.fromhex(g) for g in got]
    start = jpegs.index(got[0])
    assert got == [jpegs[(start + i) % len(jpegs)] for i in range(12)]
    assert size == (160, 120) and loaded == []


@needs_eval
def test_an_mjpeg_camera_that_refuses_the_password_is_a_source_error():
    camera = MjpegCamera(_jpegs(2), basic_auth="admin:right").start()
    source = make_source(_capture_config(
        source="url", url=f"http://admin:wrong@127.0.0.1:{camera.port}/stream.mjpg"))
    try:
        with pytest.raises(SourceError, match="401") as err:
            source.open()
        assert "wrong" not in str(err.value)  # credentials stay out of the logs
    finally:
        camera.stop()


@needs_eval
def test_an_http_camera_that_sends_no_multipart_stream_goes_to_ffmpeg(tmp_path):
    """A video file over HTTP (not multipart MJPEG): FFmpeg reads it."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (160, 120))
    for p in _tree_images()[:20]:
        writer.write(cv2.imread(str(p)))
    writer.release()
    body = path.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/x-msvideo")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = make_source(_capture_config(
        source="url", url=f"http://127.0.0.1:{server.server_address[1]}/clip.avi"))
    try:
        source.open()
        frame = source.read()
        assert frame.picture().shape == (120, 160, 3)
    finally:
        source.close()
        server.shutdown()
        server.server_close()
