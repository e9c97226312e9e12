"""The JSON shapes of the web API (pydantic models) and the query and path
parameters the routes share."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import BaseModel, Field

from common.arming import Arming
from common.catalogue import ClipRow

Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Name = Annotated[str | None, Query(max_length=64)]
EventId = Annotated[str, PathParam(min_length=1, max_length=128)]
ClipId = Annotated[int, PathParam(ge=1, le=2**62)]


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
    sha256: str = Field("", description="The signed SHA-256 of the file (pisentry verify "
                                        "checks it offline); empty until signed")
    chain_seq: int = Field(-1, description="Its place in the camera's chain of signed clips")
    missed: float = Field(0.0, description="Seconds of its event before its first frame that "
                                           "no clip holds (the recorder was down and nobody "
                                           "kept the video); 0 for a whole clip")


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


def clip_out(c: ClipRow) -> ClipOut:
    return ClipOut(id=c.id, camera=c.camera, start=c.start, end=c.end, duration=c.duration,
                   size=c.size, day=c.day, reason=c.reason, event_id=c.event_id,
                   state=c.state, video_url=f"/api/recordings/{c.id}/video.mp4",
                   sha256=c.sha256, chain_seq=c.chain_seq, missed=c.missed)


def arm_out(a: Arming) -> ArmOut:
    return ArmOut(**asdict(a))

