"""The motion tuner and the mask editor's API.

Pages ``/masks`` and ``/tuner`` (both save through ``/api/settings``, the
settings page's save); under ``/api/motion``:

- ``GET /regions``: the saved ``detect.masks`` and ``detect.zones``;
  ``POST /mask-image`` turns an uploaded image into polygons (nothing is
  saved).
- ``GET /tuning``: the detection profile detect is in (day or night), its
  values in use, its saved ones, the config keys they are saved under and the
  bounds; ``POST /tuning`` sends new ones for that profile (or the one named)
  to detect, used from its next frame without a restart.
- ``WS /ws/overlay``: detect's moving pixels and boxes as JSON
  (``tuner.overlay_item``), one message per frame, the next only after the
  page acknowledges the last.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.websockets import WebSocket, WebSocketDisconnect

from common.config import DetectConfig, Polygon, ZoneConfig
from common.config_store import ConfigStore
from common.messages import TUNING_LIMITS
from services.detect.profiles import profile_config
from services.web.context import WebContext
from services.web.mask_image import MaskImageError, mask_polygons
from services.web.routes.login import static_file


class Regions(BaseModel):
    masks: list[Polygon] = Field(description="Polygons (normalised) where motion is ignored")
    zones: list[ZoneConfig] = Field(description="Named zones; required ones gate alerts")
    mask_image: str = Field("", description="detect.mask_image, applied on top (read only)")


def _tuned(name: str) -> Any:
    """The config field's bounds and words, for the same field in the API."""
    low, high = TUNING_LIMITS[name]
    return Field(ge=low, le=high, description=DetectConfig.model_fields[name].description)


class Tuning(BaseModel):
    min_pixel_delta_trigger: int = _tuned("min_pixel_delta_trigger")
    min_trigger_area: float = _tuned("min_trigger_area")
    frames_to_start: int = _tuned("frames_to_start")


class TuningIn(Tuning):
    profile: Literal["day", "night", ""] = Field(
        "", description="The detection profile these are for (\"\": the one detect is in)")


class TuningOut(BaseModel):
    profile: str = Field(description="The detection profile detect is in, which these are of")
    live: Tuning = Field(description="What detect was last told to use")
    saved: Tuning = Field(description="What the config file says")
    keys: dict[str, str] = Field(description="The config key each value is saved under")
    limits: dict[str, tuple[float, float]]
    descriptions: dict[str, str]


def router(ctx: WebContext) -> APIRouter:
    router = APIRouter()

    store = ConfigStore(ctx.config_path or ctx.home.config_file, ctx.home)

    def saved() -> DetectConfig:
        """The detect section as saved (this process may have started on an older one)."""
        current = store.current().config if store.path.exists() else None
        return (current or ctx.config).detect

    @router.get("/masks", include_in_schema=False)
    def masks_page() -> FileResponse:
        return FileResponse(static_file("masks.html"), media_type="text/html",
                            headers={"Cache-Control": "no-store"})

    @router.get("/tuner", include_in_schema=False)
    def tuner_page() -> FileResponse:
        return FileResponse(static_file("tuner.html"), media_type="text/html",
                            headers={"Cache-Control": "no-store"})

    # -- masks and zones -------------------------------------------------------------
    @router.get("/api/motion/regions", response_model=Regions, summary="Saved masks and zones")
    def get_regions() -> Regions:
        d = saved()
        return Regions(masks=d.masks, zones=d.zones, mask_image=d.mask_image)

    @router.post("/api/motion/mask-image", summary="Polygons of an image's black regions",
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "image/png": {}, "image/jpeg": {}, "image/bmp": {}}}},
                 responses={422: {"description": "not a usable image"}})
    async def post_mask_image(request: Request) -> dict[str, list[list[list[float]]]]:
        data = await request.body()  # bounded by the shield (MAX_BODY_BYTES)
        try:
            polygons = await asyncio.to_thread(mask_polygons, data)
        except MaskImageError as exc:
            raise HTTPException(422, f"mask image: {exc}") from None
        return {"masks": polygons}

    # -- tuning -----------------------------------------------------------------------
    def in_force() -> str:
        """The profile detect last said it is in (day before it says)."""
        profile = ctx.board.profile(ctx.config.general.camera)
        return "night" if profile and profile["name"] == "night" else "day"

    def tuning_out(profile: str = "") -> TuningOut:
        profile = profile or in_force()
        d = profile_config(saved(), profile)
        prefix = "detect.night." if profile == "night" else "detect."
        return TuningOut(profile=profile, live=Tuning(**ctx.tuner.values[profile]),
                         saved=Tuning(**{name: getattr(d, name) for name in TUNING_LIMITS}),
                         keys={name: prefix + name for name in TUNING_LIMITS},
                         limits=TUNING_LIMITS,
                         descriptions={name: DetectConfig.model_fields[name].description or ""
                                       for name in TUNING_LIMITS})

    @router.get("/api/motion/tuning", response_model=TuningOut, summary="Motion sensitivity")
    def get_tuning() -> TuningOut:
        return tuning_out()

    @router.post("/api/motion/tuning", response_model=TuningOut,
                 summary="Try a sensitivity now: detect uses it from its next frame, unsaved")
    def post_tuning(body: Annotated[TuningIn, Body()]) -> TuningOut:
        profile = body.profile or in_force()
        ctx.tuner.set(body.model_dump(), profile)
        return tuning_out(profile)

    @router.websocket("/ws/overlay")
    async def ws_overlay(ws: WebSocket) -> None:
        """Detect's moving pixels and boxes, one JSON message per frame; the
        next goes after the page's acknowledgement (any text message)."""
        await ws.accept()
        try:
            with ctx.tuner.watch() as tuner:
                seen = tuner.overlays_in
                while not ctx.stopping:
                    got = await tuner.next(seen, timeout=1.0)
                    if got is None:
                        continue
                    seen, item = got
                    await ws.send_json(item)
                    await ws.receive_text()  # the acknowledgement
        except WebSocketDisconnect:
            pass

    return router
