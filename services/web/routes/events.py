"""Events and clips as JSON, and the user's verdict on an event (which record,
the catalogue's owner, writes)."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from common.catalogue import EventRow
from common.messages import Label
from services.web.context import WebContext
from services.web.schemas import (
    Activity,
    ClipId,
    ClipOut,
    ClipsPage,
    Day,
    EventId,
    EventOut,
    EventsPage,
    LabelIn,
    Limit,
    Name,
    Offset,
    SnapshotOut,
    clip_out,
)


def router(ctx: WebContext) -> APIRouter:
    router = APIRouter()

    def event_out(e: EventRow, detail: bool = False) -> EventOut:
        out = EventOut(id=e.id, camera=e.camera, start=e.start, end=e.end, day=e.day,
                       labels=e.labels, zones=e.zones, boxes=e.boxes, score=e.score, area=e.area,
                       alert=e.alert, verdict=e.verdict,
                       snapshot_url=f"/api/events/{urllib.parse.quote(e.id, safe='')}"
                                    "/snapshot.jpg")
        if detail:
            cat = ctx.catalogue()
            out.clips = [clip_out(c) for c in cat.clips_for(e.id)]
            out.snapshots = [SnapshotOut(id=s.id, camera=s.camera, kind=s.kind, ts=s.ts,
                                         width=s.width, height=s.height,
                                         url=ctx.media_url(s.path))
                             for s in cat.snapshots_for(e.id)]
        return out

    @router.get("/api/events", response_model=EventsPage, summary="Events, newest first")
    def events(day: Day = None, label: Name = None, zone: Name = None, camera: Name = None,
               verdict: Annotated[Literal["real", "false_alarm", ""] | None, Query()] = None,
               limit: Limit = 50, offset: Offset = 0) -> EventsPage:
        rows = ctx.catalogue().events(day=day, label=label, zone=zone, camera=camera,
                                      verdict=verdict, limit=limit, offset=offset)
        return EventsPage(limit=limit, offset=offset, count=len(rows),
                          items=[event_out(e) for e in rows])

    @router.get("/api/activity", response_model=Activity, summary="Events per hour of a day")
    def activity(day: Day = None, camera: Name = None) -> Activity:
        day = day or time.strftime("%Y-%m-%d", time.localtime(ctx.clock()))
        hours = [0] * 24
        for e in ctx.catalogue().events(day=day, camera=camera, limit=100_000):
            hours[time.localtime(e.start).tm_hour] += 1
        return Activity(day=day, hours=hours)

    @router.get("/api/events/{event_id}", response_model=EventOut, summary="One event",
             responses={404: {"description": "no such event"}})
    def event(event_id: EventId) -> EventOut:
        e = ctx.catalogue().event(event_id)
        if e is None:
            raise HTTPException(404, "no such event")
        return event_out(e, detail=True)

    @router.post("/api/events/{event_id}/label", response_model=EventOut,
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

    @router.get("/api/recordings", response_model=ClipsPage, summary="Clips, newest first")
    def recordings(day: Day = None, camera: Name = None,
                   event_id: Annotated[str | None, Query(max_length=128)] = None,
                   limit: Limit = 50, offset: Offset = 0) -> ClipsPage:
        rows = ctx.catalogue().clips(day=day, camera=camera, event_id=event_id, limit=limit,
                                     offset=offset)
        return ClipsPage(limit=limit, offset=offset, count=len(rows),
                         items=[clip_out(c) for c in rows])

    @router.get("/api/recordings/{clip_id}", response_model=ClipOut, summary="One clip",
             responses={404: {"description": "no such clip"}})
    def recording(clip_id: ClipId) -> ClipOut:
        c = ctx.catalogue().clip(clip_id)
        if c is None:
            raise HTTPException(404, "no such clip")
        return clip_out(c)

    return router
