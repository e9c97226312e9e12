"""The FastAPI app: pages, the JSON API, the live streams.

``create_app(ctx)`` builds it from a ``WebContext`` (the live hub, the health
board, the event feed, the arm state as notify last announced it and a
callback that sends a command on the bus), so tests run the app in-process on
real state without a bus, and the service shell only wires the context to
sockets.

Every route needs a session or an API key (``guard.GuardMiddleware``) except
the login page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyCookie, APIKeyHeader
from pydantic import BaseModel, Field
from starlette.websockets import WebSocket, WebSocketDisconnect

from common.arming import Arming, ArmingCommand, ArmingStore
from common.catalogue import CatalogueError, CatalogueReader, ClipRow, EventRow
from common.config import Config, masked_dump
from common.messages import Arm, Disarm, Label, Mute, Unmute
from common.paths import Home
from services.web import guard, shield
from services.web.feed import EventFeed
from services.web.h264live import H264Channel
from services.web.health import HealthBoard, system_stats
from services.web.live import BOUNDARY, LiveChannel, LiveHub

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = {".mp4", ".jpg", ".jpeg", ".png"}
PAGES = {"/": "live.html", "/events": "events.html", "/player": "player.html",
         "/health": "health.html", "/config": "config.html"}
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Name = Annotated[str | None, Query(max_length=64)]
EventId = Annotated[str, PathParam(min_length=1, max_length=128)]
ClipId = Annotated[int, PathParam(ge=1, le=2**62)]


@dataclass
class WebContext:
    config: Config
    home: Home
    hub: LiveHub
    board: HealthBoard
    feed: EventFeed = field(default_factory=EventFeed)
    # Publishes one command (class and fields) on web's endpoint.
    send: Callable[..., None] = lambda cls, **fields: None
    arming_reply_seconds: float = 3.0  # how long notify (arming) or record (a verdict) may take
    clock: Callable[[], float] = time.time
    counters: dict[str, Any] = field(default_factory=dict)
    stopping: bool = False
    video: dict[str, H264Channel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.arming = ArmingStore(self.home).load()  # then as notify announces it
        storage = self.config.record.storage_dir or self.home.recordings_dir
        self.media_root = Path(storage).expanduser().resolve()
        self._catalogue: CatalogueReader | None = None

    @property
    def tls(self) -> bool:
        return bool(self.config.web.certfile_path)

    def catalogue(self) -> CatalogueReader:
        """Opened on first use: the record service may create it after we start."""
        if self._catalogue is None:
            try:
                self._catalogue = CatalogueReader(self.home.catalogue)
            except CatalogueError as exc:
                raise HTTPException(503, f"catalogue unavailable: {exc}") from None
        return self._catalogue

    async def change_arming(self, cls: type[ArmingCommand], **fields: float) -> Arming:
        """Ask notify, the owner of the arm state, for a change and answer with
        the state it announces: the page shows what every service follows."""
        sent = self.clock()
        self.send(cls, source="web", **fields)
        deadline = time.monotonic() + self.arming_reply_seconds
        while not (self.arming.changed_by == "web" and self.arming.changed_at >= sent):
            if time.monotonic() >= deadline:
                raise HTTPException(503, "notify did not confirm the change (is it running?); "
                                         "the arm state is unchanged")
            await asyncio.sleep(0.02)
        return self.arming

    def media_path(self, raw: str) -> Path | None:
        """``raw`` (relative to the recordings folder, or absolute from the
        catalogue) as a file inside it, or None: no traversal out of it."""
        try:
            candidate = (self.media_root / raw).resolve()
        except (OSError, ValueError):  # embedded NUL, loops
            return None
        if not candidate.is_relative_to(self.media_root):
            return None
        if candidate.suffix.lower() not in MEDIA_SUFFIXES or not candidate.is_file():
            return None
        return candidate

    def media_url(self, path: str) -> str | None:
        try:
            rel = Path(path).resolve().relative_to(self.media_root)
        except (ValueError, OSError):
            return None
        return "/media/" + urllib.parse.quote(str(rel))


# -- API models -------------------------------------------------------------------
class ArmOut(BaseModel):
    armed: bool
    muted_until: float
    changed_by: str
    changed_at: float


class MuteIn(BaseModel):
    minutes: float = Field(ge=0, le=7 * 24 * 60,
                           description="Stay armed but send no alerts for this long (0: unmute)")


class LabelIn(BaseModel):
    verdict: Literal["real", "false", "false_alarm", ""] = Field(
        description='"real", "false" (a false alarm; "false_alarm" also accepted) or "" to clear')


class LoginIn(BaseModel):
    username: str = Field("admin", max_length=64)
    password: str = Field(max_length=1024)


class ClipOut(BaseModel):
    id: int
    camera: str
    start: float
    end: float
    duration: float
    size: int
    day: str
    reason: str
    event_id: str
    state: str
    video_url: str


class SnapshotOut(BaseModel):
    id: int
    camera: str
    kind: str
    ts: float
    width: int
    height: int
    url: str | None


class EventOut(BaseModel):
    id: str
    camera: str
    start: float
    end: float
    day: str
    labels: list[str]
    zones: list[str]
    boxes: list[list[float]]
    score: float
    area: float
    alert: bool
    verdict: str
    snapshot_url: str
    clips: list[ClipOut] = []
    snapshots: list[SnapshotOut] = []


class Page(BaseModel):
    limit: int
    offset: int
    count: int


class EventsPage(Page):
    items: list[EventOut]


class ClipsPage(Page):
    items: list[ClipOut]


class Activity(BaseModel):
    day: str
    hours: list[int] = Field(description="Events per local hour, 0..23")


class CameraOut(BaseModel):
    name: str
    width: int
    height: int
    frames_in: int
    encoded: int
    viewers: int
    last_frame_age: float | None


class StatusOut(BaseModel):
    camera: str
    time: float
    armed: ArmOut
    all_alive: bool
    services: dict[str, list[dict[str, Any]]]
    cameras: list[CameraOut]
    system: dict[str, Any]
    web: dict[str, Any]


def _clip_out(c: ClipRow) -> ClipOut:
    return ClipOut(id=c.id, camera=c.camera, start=c.start, end=c.end, duration=c.duration,
                   size=c.size, day=c.day, reason=c.reason, event_id=c.event_id,
                   state=c.state, video_url=f"/api/recordings/{c.id}/video.mp4")


def _arm_out(a: Arming) -> ArmOut:
    return ArmOut(**asdict(a))


def _static(name: str) -> Path:
    return Path(str(resources.files("services.web") / "static" / name))


# -- the app ---------------------------------------------------------------------------
def create_app(ctx: WebContext) -> FastAPI:
    web = ctx.config.web
    gate = guard.Gate(ctx.home, web.api_key.get_secret_value(), web.session_hours, ctx.clock)
    # Declared for the OpenAPI document only: the middleware does the checking.
    security = [Security(APIKeyHeader(name=web.api_key_header_name, auto_error=False)),
                Security(APIKeyCookie(name=guard.COOKIE, auto_error=False))]
    # No /docs or /redoc: their pages load scripts from a CDN, which the content
    # security policy (and a camera without internet) rules out; the document
    # itself is at /openapi.json.
    app = FastAPI(title="pisentry", version="1", dependencies=security, docs_url=None,
                  redoc_url=None,
                  description="The pisentry camera: live view, events, clips, health. Every "
                              "route needs a session cookie (POST /login) or the API key "
                              f"header `{web.api_key_header_name}`.")
    app.add_middleware(guard.GuardMiddleware, gate=gate, api_key_header=web.api_key_header_name)
    app.add_middleware(shield.ShieldMiddleware)  # added last: runs first
    app.state.ctx = ctx
    app.state.gate = gate

    # -- login ----------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    def login_page() -> FileResponse:
        return FileResponse(_static("login.html"), media_type="text/html")

    @app.post("/login", summary="Log in; sets the session cookie",
              responses={200: {"description": "logged in"}, 303: {"description": "form: to /"},
                         401: {"description": "wrong password"},
                         429: {"description": "too many failed logins"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": LoginIn.model_json_schema()},
                  "application/x-www-form-urlencoded": {
                      "schema": LoginIn.model_json_schema()}}}})
    async def login(request: Request) -> Response:
        form = "application/x-www-form-urlencoded" in request.headers.get("content-type", "")
        raw = await request.body()
        try:
            if form:
                fields = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
            else:
                fields = json.loads(raw or b"null")
            creds = LoginIn.model_validate(fields)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPException(422, f"login needs a username and password: {exc}"[:300])
        client = request.client.host if request.client else "?"
        now = ctx.clock()
        wait = gate.limiter.attempt(client, now)  # counted before the check: no race
        if wait > 0:
            log.warning("login rate limit hit by %s", client)
            return _login_failed(form, 429, "too many failed logins; try again later",
                                 {"Retry-After": str(int(wait) + 1)})
        ok = creds.username == "admin" and await asyncio.to_thread(
            gate.check_password, creds.password)
        if not ok:
            log.info("failed login from %s", client)
            return _login_failed(form, 401, "wrong user name or password")
        gate.limiter.succeeded(client, now)
        response: Response = (Response(status_code=303, headers={"Location": "/"}) if form
                              else JSONResponse({"ok": True}))
        response.set_cookie(guard.COOKIE, gate.new_session(), max_age=int(gate.lifetime),
                            httponly=True, samesite="strict", secure=ctx.tls, path="/")
        log.info("login from %s", client)
        return response

    def _login_failed(form: bool, status: int, why: str,
                      headers: dict[str, str] | None = None) -> Response:
        if form:
            page = _static("login.html").read_text().replace(
                "<!--error-->", f'<p class="error">{why}</p>')
            return HTMLResponse(page, status_code=status, headers=headers)
        return JSONResponse({"detail": why}, status_code=status, headers=headers)

    @app.post("/logout", summary="End this session")
    def logout(request: Request) -> Response:
        token = request.cookies.get(guard.COOKIE)
        if token:
            gate.end_session(token)
        response = JSONResponse({"ok": True})
        response.delete_cookie(guard.COOKIE, path="/")
        return response

    # -- pages and static files --------------------------------------------------------
    def page(name: str) -> Callable[[], FileResponse]:
        def serve() -> FileResponse:
            return FileResponse(_static(name), media_type="text/html",
                                headers={"Cache-Control": "no-store"})
        return serve

    for route, name in PAGES.items():
        app.add_api_route(route, page(name), methods=["GET"], include_in_schema=False)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: Annotated[str, PathParam(pattern=r"^[a-z0-9_-]+\.(js|css|svg)$")]
               ) -> FileResponse:
        path = _static(name)
        if not path.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(path)

    # -- status and arming ----------------------------------------------------------------
    def cameras_view() -> list[CameraOut]:
        mono = time.monotonic()
        out = []
        for ch in ctx.hub.channels.values():
            age = round(mono - ch.received_at, 3) if ch.frames_in else None
            out.append(CameraOut(name=ch.camera, width=ch.width, height=ch.height,
                                 frames_in=ch.frames_in, encoded=ch.encoded_count,
                                 viewers=ch.viewers, last_frame_age=age))
        return out

    @app.get("/api/status", response_model=StatusOut, summary="Services, arm state, host load")
    async def status() -> StatusOut:
        now = ctx.clock()
        system = await asyncio.to_thread(system_stats, ctx.media_root, ctx.config.health)
        return StatusOut(camera=ctx.config.general.camera, time=now, armed=_arm_out(ctx.arming),
                         all_alive=ctx.board.all_alive(now), services=ctx.board.view(now),
                         cameras=cameras_view(), system=system,
                         web={**ctx.counters, "viewers": ctx.hub.viewers,
                              "encoded": ctx.hub.encoded_count,
                              "feed_listeners": ctx.feed.listeners})

    @app.get("/api/cameras", response_model=list[CameraOut], summary="Cameras in the grid")
    def cameras() -> list[CameraOut]:
        return cameras_view()

    @app.get("/api/arm", response_model=ArmOut, summary="Current arm state")
    def arm_state() -> ArmOut:
        return _arm_out(ctx.arming)

    @app.post("/api/arm", response_model=ArmOut, summary="Arm: alerts on")
    async def arm() -> ArmOut:
        return _arm_out(await ctx.change_arming(Arm))

    @app.post("/api/disarm", response_model=ArmOut, summary="Disarm: alerts off")
    async def disarm() -> ArmOut:
        return _arm_out(await ctx.change_arming(Disarm))

    @app.post("/api/mute", response_model=ArmOut, summary="Mute alerts for a while")
    async def mute(body: MuteIn) -> ArmOut:
        if not body.minutes:
            return _arm_out(await ctx.change_arming(Unmute))
        return _arm_out(await ctx.change_arming(Mute, until=ctx.clock() + body.minutes * 60))

    @app.get("/api/config", summary="The effective config, secrets masked")
    def config() -> dict[str, Any]:
        return masked_dump(ctx.config)

    # -- live ------------------------------------------------------------------------------
    def channel(camera: str | None) -> LiveChannel:
        ch = ctx.hub.get(camera)
        if ch is None:
            raise HTTPException(404, f"no camera {camera!r}")
        return ch

    @app.get("/api/snapshot.jpg", summary="The live picture now, as JPEG",
             response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no frame"}})
    async def snapshot(camera: Name = None) -> Response:
        ch = channel(camera)
        if not ch.wanted():  # nobody watched, so frames were off: this asks for them again
            ch.demand()
            await ch.next(ch.seq, timeout=1.5)
        enc = ch.latest()
        if enc is None:
            raise HTTPException(404, "no frame from this camera yet")
        return Response(enc.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/stream.mjpg", summary="Live MJPEG stream", response_class=StreamingResponse,
             responses={200: {"content": {f"multipart/x-mixed-replace; boundary="
                                          f"{BOUNDARY.decode()}": {}}}})
    async def stream(camera: Name = None,
                     fps: Annotated[float, Query(gt=0, le=30)] = web.max_stream_fps
                     ) -> StreamingResponse:
        ch = channel(camera)
        rate = min(fps, web.max_stream_fps)
        return StreamingResponse(_mjpeg(ch, rate), media_type="multipart/x-mixed-replace; "
                                 f"boundary={BOUNDARY.decode()}",
                                 headers={"Cache-Control": "no-store"})

    async def _paced(ch: LiveChannel, rate: float) -> AsyncIterator[Any]:
        """The newest encoded frame of ``ch``, at most ``rate`` a second and
        never the same one twice, until the service stops."""
        seq = -1
        next_at = 0.0
        while not ctx.stopping:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            enc = await ch.next(seq, timeout=1.0)
            if enc is None or enc.seq == seq:
                continue
            seq = enc.seq
            next_at = time.monotonic() + 1.0 / rate
            yield enc

    async def _mjpeg(ch: LiveChannel, rate: float) -> AsyncIterator[bytes]:
        with ch.watch():
            ctx.counters["mjpeg_viewers_total"] = ctx.counters.get("mjpeg_viewers_total", 0) + 1
            async for enc in _paced(ch, rate):
                yield enc.part

    @app.websocket("/ws/live")
    async def ws_live(ws: WebSocket, camera: str | None = None, fps: float = 0.0) -> None:
        """JPEG frames as binary messages; the next goes only after the page
        acknowledges the last (any text message), so a slow phone gets fewer
        frames instead of a growing backlog."""
        ch = ctx.hub.get(camera)
        if ch is None:
            await ws.close(code=1008)
            return
        rate = min(fps, web.max_stream_fps) if fps > 0 else web.max_stream_fps
        await ws.accept()
        try:
            with ch.watch():
                async for enc in _paced(ch, rate):
                    await ws.send_bytes(enc.jpeg)
                    await ws.receive_text()  # the acknowledgement
        except WebSocketDisconnect:
            pass

    @app.websocket("/ws/h264")
    async def ws_h264(ws: WebSocket, camera: str | None = None) -> None:
        """The camera's own h264, remuxed (not re-encoded) to fragmented MP4 for
        Media Source Extensions: first a JSON text message ``{"codec": ...}``,
        then the init segment, then media segments from a keyframe on. The
        socket closes with 1012 when the stream restarts (the page reconnects)."""
        name = camera or next(iter(ctx.video), "")
        ch = ctx.video.get(name)
        if ch is None:
            await ws.close(code=1008)
            return
        await ws.accept()
        q = ch.join()  # joining is what turns the h264 subscription on
        try:
            if not await ch.ready(timeout=5.0):
                await ws.close(code=1011, reason="no video from this camera")
                return
            await ws.send_json({"codec": ch.codec, "camera": name})
            await ws.send_bytes(ch.init or b"")
            while not ctx.stopping:
                try:
                    seg = await asyncio.wait_for(q.get(), timeout=1.0)
                except TimeoutError:
                    continue
                if seg is None:
                    await ws.close(code=1012, reason="stream restarted")
                    return
                await ws.send_bytes(seg.data)
        except WebSocketDisconnect:
            pass
        finally:
            ch.leave(q)

    @app.websocket("/ws/events")
    async def ws_events(ws: WebSocket) -> None:
        """Motion, snapshot, recording and arm-state messages as JSON, live."""
        await ws.accept()
        q = ctx.feed.listen()
        try:
            await ws.send_json({"topic": "state", **asdict(ctx.arming)})
            while not ctx.stopping:
                try:
                    item = await asyncio.wait_for(q.get(), timeout=1.0)
                except TimeoutError:
                    continue
                await ws.send_json(item)
        except WebSocketDisconnect:
            pass
        finally:
            ctx.feed.forget(q)

    # -- events and recordings ---------------------------------------------------------------
    def event_out(e: EventRow, detail: bool = False) -> EventOut:
        out = EventOut(id=e.id, camera=e.camera, start=e.start, end=e.end, day=e.day,
                       labels=e.labels, zones=e.zones, boxes=e.boxes, score=e.score, area=e.area,
                       alert=e.alert, verdict=e.verdict,
                       snapshot_url=f"/api/events/{urllib.parse.quote(e.id, safe='')}"
                                    "/snapshot.jpg")
        if detail:
            cat = ctx.catalogue()
            out.clips = [_clip_out(c) for c in cat.clips_for(e.id)]
            out.snapshots = [SnapshotOut(id=s.id, camera=s.camera, kind=s.kind, ts=s.ts,
                                         width=s.width, height=s.height,
                                         url=ctx.media_url(s.path))
                             for s in cat.snapshots_for(e.id)]
        return out

    @app.get("/api/events", response_model=EventsPage, summary="Events, newest first")
    def events(day: Day = None, label: Name = None, zone: Name = None, camera: Name = None,
               verdict: Annotated[Literal["real", "false_alarm", ""] | None, Query()] = None,
               limit: Limit = 50, offset: Offset = 0) -> EventsPage:
        rows = ctx.catalogue().events(day=day, label=label, zone=zone, camera=camera,
                                      verdict=verdict, limit=limit, offset=offset)
        return EventsPage(limit=limit, offset=offset, count=len(rows),
                          items=[event_out(e) for e in rows])

    @app.get("/api/activity", response_model=Activity, summary="Events per hour of a day")
    def activity(day: Day = None, camera: Name = None) -> Activity:
        day = day or time.strftime("%Y-%m-%d", time.localtime(ctx.clock()))
        hours = [0] * 24
        for e in ctx.catalogue().events(day=day, camera=camera, limit=100_000):
            hours[time.localtime(e.start).tm_hour] += 1
        return Activity(day=day, hours=hours)

    @app.get("/api/events/{event_id}", response_model=EventOut, summary="One event",
             responses={404: {"description": "no such event"}})
    def event(event_id: EventId) -> EventOut:
        e = ctx.catalogue().event(event_id)
        if e is None:
            raise HTTPException(404, "no such event")
        return event_out(e, detail=True)

    @app.get("/api/events/{event_id}/snapshot.jpg", summary="An event's snapshot",
             response_class=FileResponse,
             responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "none"}})
    def event_snapshot(event_id: EventId) -> FileResponse:
        for snap in reversed(ctx.catalogue().snapshots_for(event_id)):
            path = ctx.media_path(snap.path)
            if path is not None:
                return FileResponse(path, media_type="image/jpeg")
        raise HTTPException(404, "no snapshot for this event")

    @app.post("/api/events/{event_id}/label", response_model=EventOut,
              summary="Mark an event real or a false alarm",
              responses={404: {"description": "no such event"}})
    async def label(event_id: EventId, body: LabelIn) -> EventOut:
        """record writes the verdict (the catalogue is its file): ask, then
        answer with the event once the catalogue shows it."""
        verdict = "false_alarm" if body.verdict == "false" else body.verdict
        cat = ctx.catalogue()
        if cat.event(event_id) is None:
            raise HTTPException(404, "no such event")
        sent = ctx.clock()
        ctx.send(Label, source="web", event_id=event_id, verdict=verdict)
        deadline = time.monotonic() + ctx.arming_reply_seconds
        while True:
            e = cat.event(event_id)
            if e is not None and e.verdict == verdict and e.verdict_ts >= sent:
                return event_out(e, detail=True)
            if time.monotonic() >= deadline:
                raise HTTPException(503, "record did not confirm the verdict (is it "
                                         "running?); the event is unchanged")
            await asyncio.sleep(0.05)

    @app.get("/api/recordings", response_model=ClipsPage, summary="Clips, newest first")
    def recordings(day: Day = None, camera: Name = None,
                   event_id: Annotated[str | None, Query(max_length=128)] = None,
                   limit: Limit = 50, offset: Offset = 0) -> ClipsPage:
        rows = ctx.catalogue().clips(day=day, camera=camera, event_id=event_id, limit=limit,
                                     offset=offset)
        return ClipsPage(limit=limit, offset=offset, count=len(rows),
                         items=[_clip_out(c) for c in rows])

    @app.get("/api/recordings/{clip_id}", response_model=ClipOut, summary="One clip",
             responses={404: {"description": "no such clip"}})
    def recording(clip_id: ClipId) -> ClipOut:
        c = ctx.catalogue().clip(clip_id)
        if c is None:
            raise HTTPException(404, "no such clip")
        return _clip_out(c)

    @app.get("/api/recordings/{clip_id}/video.mp4", summary="A clip's MP4 (HTTP ranges)",
             response_class=FileResponse,
             responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "a range"},
                        404: {"description": "no such clip"}})
    def recording_video(clip_id: ClipId) -> FileResponse:
        c = ctx.catalogue().clip(clip_id)
        path = ctx.media_path(c.path) if c else None
        if path is None:
            raise HTTPException(404, "no such clip")
        return FileResponse(path, media_type="video/mp4")

    @app.get("/media/{path:path}", summary="A file under the recordings folder",
             response_class=FileResponse, responses={404: {"description": "no such file"}})
    def media(path: Annotated[str, PathParam(max_length=1024)]) -> FileResponse:
        found = ctx.media_path(path)
        if found is None:
            raise HTTPException(404, "no such file")
        return FileResponse(found)

    return app
