"""The FastAPI app: pages, the JSON API, the live streams.

``create_app(ctx)`` builds it from a ``WebContext`` (``services.web.context``)
and mounts the routers of ``services.web.routes``, one module per part of the
API; the JSON shapes are in ``services.web.schemas``. Tests run the app
in-process on real state without a bus, and the service shell only wires the
context to sockets.

Every route needs a session or an API key (``guard.GuardMiddleware``) except
the login page.
"""

from __future__ import annotations

from fastapi import FastAPI, Security
from fastapi.security import APIKeyCookie, APIKeyHeader

from services.web import guard, shield
from services.web.context import WebContext
from services.web.routes import events, live, login, media, motion, settings, status


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
    app.include_router(login.router(ctx, gate))
    app.include_router(status.router(ctx))
    app.include_router(live.router(ctx))
    app.include_router(events.router(ctx))
    app.include_router(media.router(ctx))
    app.include_router(settings.router(ctx, gate))
    app.include_router(motion.router(ctx))
    return app
