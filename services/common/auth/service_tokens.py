"""Tokens a service presents when it calls another service."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from services.common.auth.tokens import DevIssuer

ServiceTokenSource = Callable[[], str]


class DevServiceTokens:
    """Embedded default: the service mints its own system token with the development issuer."""

    LIFETIME = 300.0

    def __init__(self, issuer: DevIssuer, *, subject: str, organization: str) -> None:
        self._issuer = issuer
        self._subject = subject
        self._organization = organization
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        """Minted once and reused until 30 s before it expires, as ClientCredentialsTokens
        does: minting signs, and the consent feed and checks ask several times a second
        (issue 15)."""
        with self._lock:
            if time.monotonic() > self._expires_at - 30:
                self._token = self._issuer.mint(
                    subject=self._subject,
                    role="integration",
                    organization=self._organization,
                    scopes=("system/Consent.rs", "system/Event.rs"),
                    lifetime_seconds=int(self.LIFETIME),
                )
                self._expires_at = time.monotonic() + self.LIFETIME
            return self._token


class ClientCredentialsTokens:
    """Production: OAuth 2.0 client credentials at the organisation's token endpoint."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str) -> None:
        self._request = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }
        self._token_url = token_url
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if time.monotonic() > self._expires_at - 30:
                response = httpx.post(self._token_url, data=self._request, timeout=5)
                response.raise_for_status()
                body = response.json()
                self._token = body["access_token"]
                self._expires_at = time.monotonic() + float(body.get("expires_in", 300))
            return self._token
