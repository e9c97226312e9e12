"""Status (services, cameras, host) and arming; arming goes to notify, the
owner of the arm state, as one command."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter

from common.config import masked_dump
from common.messages import Arm, Disarm, Mute, SelfTest, Unmute
from services.web.context import WebContext
from services.web.health import system_stats, write_budget
from services.web.schemas import ArmOut, CameraOut, MuteIn, StatusOut, arm_out


def router(ctx: WebContext) -> APIRouter:
    router = APIRouter()

    def cameras_view() -> list[CameraOut]:
        mono = time.monotonic()
        out = []
        for ch in ctx.hub.channels.values():
            age = round(mono - ch.received_at, 3) if ch.frames_in else None
            out.append(CameraOut(name=ch.camera, width=ch.width, height=ch.height,
                                 frames_in=ch.frames_in, encoded=ch.encoded_count,
                                 viewers=ch.viewers, last_frame_age=age))
        return out

    @router.get("/api/status", response_model=StatusOut, summary="Services, arm state, host load")
    async def status() -> StatusOut:
        now = ctx.clock()
        system = await asyncio.to_thread(system_stats, ctx.media_root, ctx.config.health)
        system["writes"] = write_budget(ctx.board, ctx.config.general.camera, ctx.media_root,
                                        ctx.home.root)
        return StatusOut(camera=ctx.config.general.camera, time=now, armed=arm_out(ctx.arming),
                         all_alive=ctx.board.all_alive(now), services=ctx.board.view(now),
                         cameras=cameras_view(), system=system,
                         web={**ctx.counters, "viewers": ctx.hub.viewers,
                              "encoded": ctx.hub.encoded_count,
                              "feed_listeners": ctx.feed.listeners})

    @router.get("/api/cameras", response_model=list[CameraOut], summary="Cameras in the grid")
    def cameras() -> list[CameraOut]:
        return cameras_view()

    @router.get("/api/arm", response_model=ArmOut, summary="Current arm state")
    def arm_state() -> ArmOut:
        return arm_out(ctx.arming)

    @router.post("/api/arm", response_model=ArmOut, summary="Arm: alerts on")
    async def arm() -> ArmOut:
        return arm_out(await ctx.change_arming(Arm))

    @router.post("/api/disarm", response_model=ArmOut, summary="Disarm: alerts off")
    async def disarm() -> ArmOut:
        return arm_out(await ctx.change_arming(Disarm))

    @router.post("/api/mute", response_model=ArmOut, summary="Mute alerts for a while")
    async def mute(body: MuteIn) -> ArmOut:
        if not body.minutes:
            return arm_out(await ctx.change_arming(Unmute))
        return arm_out(await ctx.change_arming(Mute, until=ctx.clock() + body.minutes * 60))

    @router.post("/api/selftest", status_code=202,
                 summary="Run the self-test now (notify runs it; the result comes in "
                         "GET /api/selftest and as a message)")
    def selftest_start() -> dict[str, Any]:
        ctx.send(SelfTest, source="web")
        return {"asked": True}

    @router.get("/api/selftest", summary="The last self-test: each stage's delay, or the "
                                         "stage that failed")
    def selftest_last() -> dict[str, Any]:
        try:
            result = json.loads((ctx.home.state_dir / "selftest.json").read_text())
        except (OSError, ValueError):
            return {"report": "no self-test yet"}
        return result if isinstance(result, dict) else {"report": "unreadable result"}

    @router.get("/api/config", summary="The effective config, secrets masked")
    def config() -> dict[str, Any]:
        return masked_dump(ctx.config)

    return router
