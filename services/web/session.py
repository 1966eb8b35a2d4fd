"""Who is signed in, kept in the signed session cookie (Starlette's SessionMiddleware, over
itsdangerous: HttpOnly, SameSite=Lax, Secure in production): the user's bearer token, when it
ends, and what the pages show of the user. The session ends with its token. Every form carries
the session's CSRF token, checked before any form is read for its purpose."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import Request

SESSION_USER = "user"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"


class NotSignedIn(Exception):
    """No session, or one whose token has ended: the user is sent to sign in."""


class CsrfRefused(Exception):
    """A form without this session's CSRF token."""


@dataclass(frozen=True)
class SignedInUser:
    token: str
    expires_at: float
    role: str
    name: str
    organization: str | None = None
    unit: str | None = None
    patient: str | None = None

    @property
    def is_person(self) -> bool:
        return self.role == "patient"

    @property
    def is_auditor(self) -> bool:
        return self.role == "auditor"


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a token the services will verify; read here only to show who is signed
    in and when the session ends (the services decide what the token may do)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}


def sign_in(request: Request, token: str, name: str | None = None) -> SignedInUser:
    claims = token_claims(token)
    user = SignedInUser(
        token=token,
        expires_at=float(claims.get("exp", 0)),
        role=str(claims.get("role", "")),
        name=name or str(claims.get("name") or claims.get("sub", "")),
        organization=claims.get("org"),
        unit=claims.get("unit"),
        patient=claims.get("patient"),
    )
    request.session.clear()  # a new session for a new sign-in (no fixation)
    request.session[SESSION_USER] = asdict(user)
    request.session[SESSION_CSRF] = secrets.token_urlsafe(32)
    return user


def sign_out(request: Request) -> None:
    request.session.clear()


def signed_in_user(request: Request) -> SignedInUser:
    """The signed-in user, or NotSignedIn: a dependency of every page behind sign-in."""
    stored = request.session.get(SESSION_USER)
    if not isinstance(stored, dict):
        raise NotSignedIn()
    try:
        user = SignedInUser(**stored)
    except TypeError:
        request.session.clear()
        raise NotSignedIn() from None
    if user.expires_at <= time.time():
        request.session.clear()
        raise NotSignedIn()
    return user


def csrf_token(request: Request) -> str:
    token = request.session.get(SESSION_CSRF)
    if not token:
        token = request.session[SESSION_CSRF] = secrets.token_urlsafe(32)
    return token


async def verify_csrf(request: Request) -> None:
    """On every state-changing request: the form's token must be the session's."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    form = await request.form()  # Starlette keeps the parsed form for the route
    sent = form.get(CSRF_FIELD)
    expected = request.session.get(SESSION_CSRF)
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRefused()
