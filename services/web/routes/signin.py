"""Signing in and out. On the embedded default, a development sign-in lists the demo users
and gets their tokens from the development issuer (the page does not exist when that issuer
is off). In production, OpenID Connect authorization code flow with PKCE against the trusted
issuer (authlib), for staff and for the person signing in with e-ID alike."""

from __future__ import annotations

import warnings
from typing import Any

import httpx
from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from services.common.auth.tokens import DevIssuer
from services.common.demo_identities import DEMO_USERS
from services.web.pages import error_page, render
from services.web.session import sign_in, sign_out, signed_in_user
from services.web.settings import WebSettings

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 fork and warns on import when it finds httpx, which the
    # services and this client use and which it still supports. Its own module asks to show
    # its warnings always, so the filter comes after that import.
    from authlib.deprecate import AuthlibDeprecationWarning

    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError

router = APIRouter()
# Only where the development issuer is on: otherwise the route does not exist at all.
dev_router = APIRouter()
# A development session lasts a working day's afternoon; it ends with its token.
DEV_TOKEN_SECONDS = 4 * 3600


def home_of(role: str) -> str:
    return "/me" if role == "patient" else "/worklist"


@router.get("/")
def start_page(request: Request) -> Response:
    try:
        user = signed_in_user(request)
    except Exception:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse(home_of(user.role), status_code=303)


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process answers (`sip up` waits for it); every page then asks the services."""
    return {"status": "ok"}


@router.get("/signin")
def signin_page(request: Request, ended: str | None = None) -> Response:
    settings: WebSettings = request.app.state.settings
    return render(
        request,
        "signin.html",
        dev_users=DEMO_USERS if settings.dev_issuer else [],
        oidc=settings.oidc_enabled,
        ended=bool(ended),
    )


@dev_router.post("/signin/dev")
def dev_signin(request: Request, user: str = Form()) -> Response:
    settings: WebSettings = request.app.state.settings
    demo = next((u for u in DEMO_USERS if u.key == user), None)
    if demo is None:
        return error_page(
            request,
            404,
            "Sidan finns inte",
            ["Inloggning med demoanvändare finns bara i utvecklingsläget."],
        )
    token = demo.token(DevIssuer(settings.key_dir), DEV_TOKEN_SECONDS)
    sign_in(request, token, demo.name)
    return RedirectResponse(home_of(demo.role), status_code=303)


def oidc_client(request: Request) -> Any:
    settings: WebSettings = request.app.state.settings
    oauth: OAuth | None = getattr(request.app.state, "oauth", None)
    if oauth is None:
        oauth = OAuth()
        oauth.register(
            "idp",
            server_metadata_url=f"{settings.oidc_issuer.rstrip('/')}"
            "/.well-known/openid-configuration",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            client_kwargs={"scope": settings.oidc_scope, "code_challenge_method": "S256"},
        )
        request.app.state.oauth = oauth
    return oauth.idp


@router.get("/signin/oidc")
async def oidc_start(request: Request) -> Response:
    settings: WebSettings = request.app.state.settings
    if not settings.oidc_enabled:
        return RedirectResponse("/signin", status_code=303)
    try:
        return await oidc_client(request).authorize_redirect(
            request, f"{settings.public_url.rstrip('/')}/signin/callback"
        )
    except httpx.HTTPError:
        return identity_provider_down(request)


@router.get("/signin/callback")
async def oidc_callback(request: Request) -> Response:
    settings: WebSettings = request.app.state.settings
    if not settings.oidc_enabled:
        return RedirectResponse("/signin", status_code=303)
    try:
        answer = await oidc_client(request).authorize_access_token(request)
    except httpx.HTTPError:
        return identity_provider_down(request)
    except OAuthError:
        return error_page(
            request,
            400,
            "Inloggningen misslyckades",
            ["Inloggningen kunde inte slutföras. Försök igen."],
        )
    identity = answer.get("userinfo") or {}
    user = sign_in(request, answer["access_token"], identity.get("name"))
    return RedirectResponse(home_of(user.role), status_code=303)


def identity_provider_down(request: Request) -> Response:
    return render(
        request,
        "error.html",
        status_code=503,
        heading="Inloggningstjänsten svarar inte just nu",
        sentences=["Försök igen om en stund. Om felet består, kontakta systemförvaltningen."],
    )


@router.post("/signout")
def signout(request: Request) -> Response:
    sign_out(request)
    return RedirectResponse("/signin", status_code=303)
