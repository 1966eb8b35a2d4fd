"""The web client's app factory: wires the session, the security headers, the error pages and
a router per screen (services/web/routes). It holds no data: every page asks the services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from services.common.configuration_check import ConfigurationError
from services.common.heap import settle_heap
from services.web.errors import install_error_pages
from services.web.routes import (
    messages,
    person,
    plans,
    signin,
    start,
    stays,
    timeline,
    unit,
    worklist,
)
from services.web.security_headers import SecurityHeaders
from services.web.session import verify_csrf
from services.web.settings import WebSettings

SESSION_COOKIE = "sip_session"
# The longest a session lives, whatever its token says.
SESSION_MAX_AGE_SECONDS = 12 * 3600


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One connection pool to the services for all users (each request carries its user's
    token)."""
    async with httpx.AsyncClient(timeout=app.state.settings.timeout_seconds) as http:
        app.state.http = http
        yield


def create_app(settings: WebSettings | None = None) -> FastAPI:
    settings = (settings or WebSettings.from_env()).checked()
    app = FastAPI(
        title="SIP web client",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(verify_csrf)],
    )
    app.state.settings = settings
    install_error_pages(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    if settings.dev_issuer:
        app.include_router(signin.dev_router)
    # messages before stays and plans: their /<id>/<operation> would take /<id>/messages.
    for module in (signin, worklist, unit, messages, stays, start, plans, timeline, person):
        app.include_router(module.router)

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_signing_secret(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_SECONDS,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(SecurityHeaders, strict_transport=settings.secure_cookies)
    return app


def create_served_app() -> FastAPI:
    """`create_app` for a server process: a configuration that cannot work is one line."""
    try:
        app = create_app()
    except ConfigurationError as refusal:
        raise SystemExit(f"not started: {refusal}") from None
    settle_heap()
    return app
