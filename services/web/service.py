"""The web service shell: uvicorn serving ``app.create_app`` and the bus on
one asyncio loop.

Bus. The sockets come from the common ``Bus`` (same endpoints, HWMs, CURVE)
and are awaited through ``zmq.asyncio.Poller``, which wraps them without
changing them; reading then uses the ordinary non-blocking ``Subscriber.read``.
Per camera (this one and each ``web.cameras`` entry of a hub) there are two
subscribers: live frames (``latest_only``, subscribed only while someone
watches) and everything else (heartbeats, motion, snapshots, recordings,
state). Our own publisher (endpoint ``web``) sends the heartbeat each second
and one command (``Arm``, ``Disarm``, ``Mute``, ``Unmute``) when the page
arms, disarms or mutes; notify applies it and the page shows the ``state/``
notify then announces.

Lifecycle. The HTTP server is the worker's ``companion``: the worker base runs
its bus loop on the same asyncio loop (awaiting the same sockets) and ends
either when the other ends. uvicorn owns SIGTERM/SIGINT while it serves and
hands them back to the Worker's handler when it returns; open streams end
within a second of ``ctx.stopping``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
import zmq

from common.arming import Arming
from common.bus import STATUS_ENDPOINTS, Message, Subscriber
from common.config import SERVICES
from common.messages import ArmState, Frame, Header, Heartbeat, MotionOverlay, VideoPacket
from common.supervisor_client import supervised_states
from common.worker import SetupError, Worker
from services.web import auth
from services.web.app import create_app
from services.web.context import WebContext
from services.web.feed import EventFeed, describe
from services.web.h264live import H264Channel
from services.web.health import HealthBoard
from services.web.live import LiveChannel, LiveHub, to_pixels
from services.web.shield import MAX_HEADER_BYTES
from services.web.tuner import MotionTuner

log = logging.getLogger(__name__)

LIVE_TOPIC = Frame.TOPIC.replace(b"lores", b"live")  # b"frame/live/"
VIDEO_TOPIC = VideoPacket.TOPIC
EVENT_TOPICS = [b"heartbeat/", b"motion/", b"snapshot/", b"recording/", b"state/"]
SUPERVISOR_POLL_SECONDS = 3.0


class WebService(Worker):
    name = "web"

    def __init__(self, *args: Any, config_path: str | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.config_path = config_path  # the file the settings page saves

    def setup(self) -> None:
        web = self.config.web
        if bool(web.certfile_path) != bool(web.keyfile_path):
            raise ValueError("web.certfile_path and web.keyfile_path go together")
        for path in (web.certfile_path, web.keyfile_path):
            if path and not os.path.isfile(path):
                raise ValueError(f"web TLS file {path} does not exist")
        try:  # bind here, so a taken port is a setup error with one clear line
            family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
            self.listener = socket.create_server((web.host, web.port), family=family,
                                                 backlog=128)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SetupError(f"{web.host}:{web.port} is in use by another program; "
                                 "set web.port") from None
            raise SetupError(f"cannot listen on {web.host}:{web.port}: {exc.strerror or exc}; "
                             "check web.host and web.port") from None
        self._initial_password()
        cameras = ([self.camera] if web.local_camera else []) + [c.name for c in web.cameras]
        expected = {self.camera: [s for s in self.config.general.services if s in SERVICES]
                    } if web.local_camera else {}
        self.hub = LiveHub(cameras, quality=web.jpeg_quality)
        self.board = HealthBoard(expected)
        self.feed = EventFeed()
        self.ctx = WebContext(self.config, self.home, self.hub, self.board, self.feed,
                              send=self.send_command, clock=self.clock,
                              config_path=Path(self.config_path) if self.config_path else None)
        self.frame_subs: dict[str, tuple[Subscriber, LiveChannel]] = {}
        self.video_subs: dict[str, tuple[Subscriber, H264Channel]] = {}
        self._subscribed: dict[int, bool] = {}
        self.overlay_sub: Subscriber | None = None
        if web.local_camera:
            self._camera_subscribers(self.camera, frames=["frames"], video=["video"],
                                     events=list(STATUS_ENDPOINTS), urls={}, key="")
            # The motion tuner's overlay: subscribed only while a tuner is open.
            self.overlay_sub = self.subscribe(["detect"], [], latest_only=True)
        for cam in web.cameras:
            self._camera_subscribers(cam.name, frames=[], video=[], events=[], urls=cam.endpoints,
                                     key=cam.server_public_key)
        self.app = create_app(self.ctx)
        if web.local_camera and os.environ.get("SUPERVISOR_ENABLED"):
            threading.Thread(target=self._watch_supervisor, name="supervisor-watch",
                             daemon=True).start()

    def _initial_password(self) -> None:
        """A password made here (none was set) goes to the console, or, when
        stderr is not one (supervisord writes it to logs/web.log), to a file
        only this user can read: never into a log."""
        password = auth.ensure_initial_password(self.home)
        if not password:
            return
        if sys.stderr.isatty():
            print(f"\n  pisentry web login: admin / {password}\n  (shown once; change it "
                  "with `pisentry set-password`)\n", file=sys.stderr, flush=True)
            return
        path = auth.initial_password_file(self.home)
        auth.write_private(path, f"admin / {password}\n".encode())
        log.warning("no web password was set: made one, in %s (readable by you only; "
                    "delete it once read, or set your own with `pisentry set-password`)", path)

    def _camera_subscribers(self, camera: str, frames: list[str], video: list[str],
                            events: list[str], urls: dict[str, str], key: str) -> None:
        frame_urls = [urls["frames"]] if "frames" in urls else []
        video_urls = [urls["video"]] if "video" in urls else []
        if video or video_urls:
            sub = self.subscribe(video, [], endpoints=video_urls, server_key=key)
            channel = H264Channel(camera, self.clock)
            self.ctx.video[camera] = channel
            self.video_subs[camera] = (sub, channel)
        event_urls = [u for n, u in urls.items() if n not in ("frames", "video")]
        if frames or frame_urls:
            sub = self.subscribe(frames, [], latest_only=True, endpoints=frame_urls,
                                 server_key=key)
            self.frame_subs[camera] = (sub, self.hub.channels[camera])
        if events or event_urls:
            self.subscribe(events, EVENT_TOPICS, endpoints=event_urls, server_key=key)

    # -- bus ---------------------------------------------------------------------------
    def send_command(self, cls: type[Header], **fields: Any) -> None:
        """From a route, on the one asyncio loop the bus also runs on (a ZMQ
        socket is not for two threads)."""
        if self.pub is not None:
            self.pub.publish(cls, ts=self.clock(), **fields)

    def handle(self, msg: Message) -> None:
        header = msg.header
        if isinstance(header, MotionOverlay):
            if header.camera == self.camera:
                self.ctx.tuner.push(header, bytes(msg.payload[0]) if msg.payload else b"")
            return
        if isinstance(header, Frame):
            channel = self.hub.get(header.camera)
            if channel is None:
                return  # a camera this hub does not show (a shared endpoint)
            if header.format == "jpeg":  # the camera's own: forwarded as it is
                channel.push_jpeg(bytes(msg.payload[0]), header.width, header.height, header.ts)
                return
            pixels = to_pixels(header.format, header.width, header.height, msg.payload[0])
            channel.push(pixels, header.ts)
            return
        if isinstance(header, VideoPacket):
            video = self.ctx.video.get(header.camera)
            # A replay is capture's pre-roll for a recorder that just
            # subscribed: old frames, and live goes on at a keyframe after it.
            if video is not None and not header.replay:
                video.push(bytes(msg.payload[0]), header.pts, header.keyframe, header.width,
                           header.height, header.fps)
            return
        if isinstance(header, Heartbeat):
            self.board.heartbeat(header, self.clock())
            return
        if isinstance(header, ArmState) and header.camera == self.camera:
            self.ctx.arming = Arming.from_message(header)
        item = describe(header)
        if item is not None:
            self.feed.publish(item)

    def _follow_viewers(self) -> None:
        """Receive raw frames and h264 only while someone watches (or just did)."""
        pairs: list[tuple[Subscriber, LiveChannel | H264Channel | MotionTuner, bytes]] = [
            (sub, ch, LIVE_TOPIC) for sub, ch in self.frame_subs.values()]
        pairs += [(sub, ch, VIDEO_TOPIC) for sub, ch in self.video_subs.values()]
        if self.overlay_sub is not None:
            pairs.append((self.overlay_sub, self.ctx.tuner, MotionOverlay.TOPIC))
        for sub, channel, topic in pairs:
            wanted = channel.wanted()
            if wanted != self._subscribed.get(id(sub), False):
                sub.socket.setsockopt(zmq.SUBSCRIBE if wanted else zmq.UNSUBSCRIBE, topic)
                self._subscribed[id(sub)] = wanted
                log.debug("%s %s", topic.decode(), "on" if wanted else "off")

    def _watch_supervisor(self) -> None:
        """The health page shows a service supervisord gave up on as FATAL,
        with its reason. Its own thread: a wedged supervisord must not stall
        the web's loop."""
        while not self.stop_requested:
            self.board.supervised(self.camera, supervised_states(self.home))
            time.sleep(SUPERVISOR_POLL_SECONDS)

    def tick(self, now: float) -> float | None:
        self._follow_viewers()
        self.ctx.tuner.tick()
        return None

    def status_counters(self) -> dict[str, Any]:
        return {"viewers": self.hub.viewers, "encoded": self.hub.encoded_count,
                "h264_viewers": sum(c.viewers for c in self.ctx.video.values()),
                "frames_in": sum(c.frames_in for c in self.hub.channels.values()),
                "feed_listeners": self.feed.listeners,
                "tuner_viewers": self.ctx.tuner.viewers,
                "bad_overlays": self.ctx.tuner.bad_overlays}

    # -- lifecycle ---------------------------------------------------------------------
    async def companion(self) -> None:
        """The HTTP server, beside the bus loop the worker base runs on the same
        asyncio loop; it ends when a stop is asked, and a stop is asked when it
        ends (uvicorn takes SIGTERM while it serves)."""
        web = self.config.web
        log.info("web on %s://%s:%d", "https" if self.ctx.tls else "http", web.host, web.port)
        server = uvicorn.Server(uvicorn.Config(
            self.app, host=web.host, port=web.port, log_config=None, access_log=False,
            ssl_certfile=web.certfile_path or None, ssl_keyfile=web.keyfile_path or None,
            timeout_graceful_shutdown=1, lifespan="off", ws_max_size=64 * 1024,
            # h11, not httptools: httptools has no bound on the request head (a
            # 200 MB header was read whole); h11 answers 400 past this size.
            http="h11", h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            # X-Forwarded-For only from a configured proxy: believed from anyone
            # (uvicorn trusts 127.0.0.1 by default) it would undo the per-client
            # login limit.
            proxy_headers=bool(web.trusted_proxies),
            forwarded_allow_ips=list(web.trusted_proxies) or None,
            # JPEG and h264 do not deflate; compressing each copy per viewer cost
            # 6x the CPU of 20 h264 viewers (measured with bench/stream.py).
            ws_per_message_deflate=False))

        async def stop_when_asked() -> None:
            while not (self.stop_requested or server.should_exit):
                await asyncio.sleep(0.1)
            self.ctx.stopping = True  # open streams end within a second
            server.should_exit = True

        watcher = asyncio.create_task(stop_when_asked())
        try:
            await server.serve(sockets=[self.listener])
        finally:
            self.ctx.stopping = True
            watcher.cancel()

    def teardown(self) -> None:
        listener = getattr(self, "listener", None)
        if listener is not None:
            listener.close()

