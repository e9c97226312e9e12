"""Login, logout, the HTML pages and the static files they load."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from services.web import guard, wizard
from services.web.context import WebContext
from services.web.schemas import LoginIn

log = logging.getLogger(__name__)

PAGES = {"/": "live.html", "/events": "events.html", "/player": "player.html",
         "/health": "health.html", "/config": "config.html"}


def static_file(name: str) -> Path:
    return Path(str(resources.files("services.web") / "static" / name))


def router(ctx: WebContext, gate: guard.Gate) -> APIRouter:
    router = APIRouter()

    @router.get("/login", include_in_schema=False)
    def login_page() -> FileResponse:
        return FileResponse(static_file("login.html"), media_type="text/html")

    @router.post("/login", summary="Log in; sets the session cookie",
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
        landing = wizard.landing(ctx.home)
        response: Response = (Response(status_code=303, headers={"Location": landing}) if form
                              else JSONResponse({"ok": True, "next": landing}))
        response.set_cookie(guard.COOKIE, gate.new_session(), max_age=int(gate.lifetime),
                            httponly=True, samesite="strict", secure=ctx.tls, path="/")
        log.info("login from %s", client)
        return response

    def _login_failed(form: bool, status: int, why: str,
                      headers: dict[str, str] | None = None) -> Response:
        if form:
            page = static_file("login.html").read_text().replace(
                "<!--error-->", f'<p class="error">{why}</p>')
            return HTMLResponse(page, status_code=status, headers=headers)
        return JSONResponse({"detail": why}, status_code=status, headers=headers)

    @router.post("/logout", summary="End this session")
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
            return FileResponse(static_file(name), media_type="text/html",
                                headers={"Cache-Control": "no-store"})
        return serve

    for route, name in PAGES.items():
        router.add_api_route(route, page(name), methods=["GET"], include_in_schema=False)

    @router.get("/static/{name}", include_in_schema=False)
    def static(name: Annotated[str, PathParam(pattern=r"^[a-z0-9_-]+\.(js|css|svg)$")]
               ) -> FileResponse:
        path = static_file(name)
        if not path.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(path)

    return router
