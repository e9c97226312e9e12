"""The live picture (JPEG now, MJPEG, JPEG over a WebSocket, the camera's own
h264 as fragmented MP4) and the live event feed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.web.context import WebContext
from services.web.live import BOUNDARY, LiveChannel
from services.web.schemas import Name


def router(ctx: WebContext) -> APIRouter:
    router = APIRouter()
    web = ctx.config.web

    def channel(camera: str | None) -> LiveChannel:
        ch = ctx.hub.get(camera)
        if ch is None:
            raise HTTPException(404, f"no camera {camera!r}")
        return ch

    @router.get("/api/snapshot.jpg", summary="The live picture now, as JPEG",
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

    @router.get("/stream.mjpg", summary="Live MJPEG stream", response_class=StreamingResponse,
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

    @router.websocket("/ws/live")
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

    @router.websocket("/ws/h264")
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

    @router.websocket("/ws/events")
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

    return router
