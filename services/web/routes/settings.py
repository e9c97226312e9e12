"""The settings pages' API: the form built from the config models, checking
and saving changes (then applying them: ``settings_apply``), secrets and the
password, the test buttons, and the first-run wizard's helpers.

Secrets are write-only: the form says whether each is set, never what it is;
changing one (or the password) needs the current password in the same
request. No request body is logged.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from common.config import Config
from common.config_store import ConfigStore
from services.web import auth, guard, wizard
from services.web.context import WebContext
from services.web.routes.login import static_file
from services.web.settings_apply import Applier
from services.web.settings_form import form, secret_keys

log = logging.getLogger(__name__)


def _notifier_check() -> Any:
    """The test buttons' module, imported on the first press: it brings paramiko
    and cryptography (about 12 MB), which a web process that nobody sets up from
    should not carry (the heavy-library system test pins what web maps)."""
    from services.web import notifier_check

    return notifier_check

PAGES = {"/settings": "settings.html", "/wizard": "wizard.html"}
SECRETS = secret_keys()


class ChangesIn(BaseModel):
    changes: dict[str, Any] = Field(
        default_factory=dict, max_length=500,
        description="Dotted key -> new value (null: back to the default). A secret is "
                    "changed by giving its new value; leaving it out keeps it.")
    current_password: str = Field("", max_length=1024,
                                  description="Needed when a secret changes")


class PasswordIn(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class WizardIn(BaseModel):
    state: Literal["pending", "done", "skipped"]


def router(ctx: WebContext, gate: guard.Gate) -> APIRouter:
    router = APIRouter()
    store = ConfigStore(ctx.config_path or ctx.home.config_file, ctx.home)
    applier = Applier(store, ctx.home, ctx.board)
    ctx.settings_applier = applier  # tests tune its timeout

    def page(name: str) -> Any:
        def serve() -> FileResponse:
            return FileResponse(static_file(name), media_type="text/html",
                                headers={"Cache-Control": "no-store"})
        return serve

    for route, name in PAGES.items():
        router.add_api_route(route, page(name), methods=["GET"], include_in_schema=False)

    def saved_config() -> Config:
        current = store.current()
        if current.config is None:  # edited by hand into something invalid meanwhile
            raise HTTPException(409, "config.toml does not validate now: "
                                     f"{current.errors[0][1]}; fix the file first")
        return current.config

    def errors_json(errors: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"key": key, "message": message} for key, message in errors]

    async def require_password(given: str) -> None:
        ok = bool(given) and await asyncio.to_thread(gate.check_password, given)
        if not ok:
            raise HTTPException(403, "the current password is wrong or missing")

    def who(request: Request) -> str:
        client = request.client.host if request.client else "?"
        keyed = ctx.config.web.api_key_header_name.lower() in request.headers
        return f"{'API key' if keyed else 'admin'} from {client}"

    @router.get("/api/settings", summary="The settings form: every section's fields, "
                "their bounds, choices and current values (secrets: only whether set)")
    def settings() -> dict[str, Any]:
        config = saved_config()
        return {"path": str(store.path), "sections": form(config),
                "wizard": wizard.state(ctx.home)}

    @router.post("/api/settings/check", summary="Validate changes without saving them")
    def check(body: ChangesIn) -> dict[str, Any]:
        try:
            proposal = store.propose(body.changes)
        except (TypeError, ValueError) as exc:
            return {"ok": False, "errors": [{"key": "", "message": str(exc)}]}
        return {"ok": proposal.config is not None, "errors": errors_json(proposal.errors)}

    @router.post("/api/settings", summary="Save changes and restart the services they concern",
                 responses={403: {"description": "a secret changed without the password"},
                            409: {"description": "a service failed on the new config: "
                                                 "rolled back"},
                            422: {"description": "invalid: nothing saved"}})
    async def save(body: ChangesIn, request: Request,
                   background: BackgroundTasks) -> JSONResponse:
        unknown = [k for k in body.changes if not isinstance(k, str) or len(k) > 200]
        if unknown:
            raise HTTPException(422, "bad key")
        old = saved_config()
        try:
            proposal = store.propose(body.changes)
        except (TypeError, ValueError) as exc:  # a key below a plain value; not TOML-able
            return JSONResponse({"ok": False, "errors": [{"key": "", "message": str(exc)}]},
                                status_code=422)
        if proposal.config is None:
            return JSONResponse({"ok": False, "errors": errors_json(proposal.errors)},
                                status_code=422)
        if SECRETS & set(body.changes):
            await require_password(body.current_password)
        outcome = await applier.save_and_apply(old, proposal.config, proposal.text, who(request))
        if outcome.restarting_later:
            background.add_task(applier.restart_web_later)
        return JSONResponse(outcome.json(), status_code=200 if outcome.ok else 409)

    @router.get("/api/settings/history", summary="The last saved versions: when, by whom, "
                "which sections")
    def history() -> list[dict[str, Any]]:
        return [{"saved_at": v.saved_at, "by": v.by, "sections": v.sections}
                for v in store.history()]

    @router.post("/api/settings/password", summary="Change the login password "
                 "(ends every other session)")
    async def password(body: PasswordIn) -> dict[str, Any]:
        await require_password(body.current_password)
        try:
            await asyncio.to_thread(auth.set_password, ctx.home, body.new_password)
        except auth.PasswordError as exc:
            raise HTTPException(422, str(exc)) from None
        log.info("web password changed from the settings page")
        return {"ok": True}

    @router.get("/api/settings/v4l2", summary="Video devices found on this machine")
    def v4l2() -> list[dict[str, Any]]:
        return video_devices()

    @router.post("/api/settings/test/{notifier}", summary="Try a notifier with the saved config")
    async def test(notifier: Annotated[Literal["telegram", "email", "mqtt", "nas"],
                                       PathParam()]) -> dict[str, Any]:
        notifier_check = _notifier_check()
        config = saved_config()
        camera = config.general.camera
        notify = config.notify
        if notifier == "telegram":
            jpeg = await live_jpeg()
            if jpeg is None:
                return {"ok": False, "message": "no live picture to send yet"}
            result = await notifier_check.telegram_photo(notify.telegram, jpeg, camera)
        elif notifier == "email":
            result = await asyncio.to_thread(notifier_check.email, notify.email,
                                             await live_jpeg(), camera)
        elif notifier == "mqtt":
            result = await asyncio.to_thread(notifier_check.mqtt, notify.mqtt, camera)
        else:
            result = await asyncio.to_thread(notifier_check.nas, notify.backup)
        log.info("test of %s: %s", notifier, "ok" if result.ok else "failed")
        return result.json()

    @router.post("/api/settings/telegram/chats",
                 summary="Chats that have written to the bot (getUpdates)")
    async def telegram_chats() -> dict[str, Any]:
        notifier_check = _notifier_check()
        try:
            chats = await notifier_check.telegram_chats(saved_config().notify.telegram)
        except notifier_check.TelegramCheckError as exc:
            return {"ok": False, "message": str(exc), "chats": []}
        return {"ok": True, "message": f"{len(chats)} chat(s) found", "chats": chats}

    @router.post("/api/wizard", summary="Mark the first-run wizard done, skipped or due")
    def set_wizard(body: WizardIn) -> dict[str, str]:
        wizard.set_state(ctx.home, body.state)
        return {"state": body.state}

    async def live_jpeg() -> bytes | None:
        channel = ctx.hub.channels.get(ctx.config.general.camera)
        if channel is None:
            return None
        if not channel.fresh(2.0):  # frames are off while nobody watches: ask for one
            await channel.next(channel.seq, timeout=3.0)
        encoded = channel.latest()
        return encoded.jpeg if encoded is not None else None

    return router


def video_devices(root: Path = Path("/sys/class/video4linux")) -> list[dict[str, Any]]:
    """/dev/videoN capture nodes with the driver's name for each."""
    out = []
    for node in sorted(root.glob("video*"), key=lambda p: int(p.name[5:] or 0)):
        if not node.name[5:].isdigit():
            continue
        try:
            name = (node / "name").read_text().strip()
        except OSError:
            name = ""
        out.append({"device": int(node.name[5:]), "path": f"/dev/{node.name}", "name": name})
    return out
