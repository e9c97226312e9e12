"""Files: an event's snapshot, a clip's MP4 (with HTTP ranges) and anything
else under the recordings folder, never outside it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from services.web.context import WebContext
from services.web.schemas import ClipId, EventId


def router(ctx: WebContext) -> APIRouter:
    router = APIRouter()

    @router.get("/api/events/{event_id}/snapshot.jpg", summary="An event's snapshot",
             response_class=FileResponse,
             responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "none"}})
    def event_snapshot(event_id: EventId) -> FileResponse:
        for snap in reversed(ctx.catalogue().snapshots_for(event_id)):
            path = ctx.media_path(snap.path)
            if path is not None:
                return FileResponse(path, media_type="image/jpeg")
        raise HTTPException(404, "no snapshot for this event")

    @router.get("/api/recordings/{clip_id}/video.mp4", summary="A clip's MP4 (HTTP ranges)",
             response_class=FileResponse,
             responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "a range"},
                        404: {"description": "no such clip"}})
    def recording_video(clip_id: ClipId) -> FileResponse:
        c = ctx.catalogue().clip(clip_id)
        path = ctx.media_path(c.path) if c else None
        if path is None:
            raise HTTPException(404, "no such clip")
        return FileResponse(path, media_type="video/mp4")

    @router.get("/media/{path:path}", summary="A file under the recordings folder",
             response_class=FileResponse, responses={404: {"description": "no such file"}})
    def media(path: Annotated[str, PathParam(max_length=1024)]) -> FileResponse:
        found = ctx.media_path(path)
        if found is None:
            raise HTTPException(404, "no such file")
        return FileResponse(found)

    return router
