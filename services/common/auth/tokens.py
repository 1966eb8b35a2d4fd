"""Verifying bearer JWTs against trusted issuers, and the embedded development issuer.

Production: each trusted issuer's keys come from its JWKS URL, fetched with httpx and cached;
a token signed with a key id the cache does not know makes one refetch (rate-limited), which
is how key rotation reaches us. Development: an issuer inside the system whose private key
lives in the key directory (`SIP_KEY_DIR`, or the data folder), so `sip token` can mint tokens
at once.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from pydantic import ValidationError

from contracts.actor import Actor
from services.common.auth.claims import TokenClaims, TokenHeader, first_problem
from services.common.key_files import load_or_create_jwk

DEFAULT_AUDIENCE = "sip-case-service"
DEV_ISSUER = "urn:sip-case-service:dev-issuer"
DEV_KEY_FILE = "dev-issuer-key.json"
ALGORITHMS = ["ES256", "RS256", "PS256", "EdDSA"]
LEEWAY_SECONDS = 30
# Far above any real token (a few kB); bounds the work done on a header before it is trusted.
MAX_TOKEN_CHARS = 16_384


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (never the token itself)."""


@dataclass
class JwksCache:
    """One issuer's signing keys, fetched from its JWKS URL and cached."""

    url: str
    max_age_seconds: float = 600
    min_refetch_seconds: float = 30
    _keys: KeySet | None = None
    _fetched_at: float = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_set(self, kid: str | None) -> KeySet:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = self._keys is None or age > self.max_age_seconds
            unknown_kid = (
                kid is not None
                and self._keys is not None
                and not any(key.kid == kid for key in self._keys.keys)
            )
            if stale or (unknown_kid and age > self.min_refetch_seconds):
                self._keys = self._fetch()
                self._fetched_at = time.monotonic()
            assert self._keys is not None
            return self._keys

    def _fetch(self) -> KeySet:
        try:
            response = httpx.get(self.url, timeout=5)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as error:
            if self._keys is not None:
                return self._keys  # keep verifying with the keys we had
            raise InvalidToken(f"the issuer's keys could not be fetched ({error})") from None


class TokenVerifier:
    def __init__(
        self,
        issuers: dict[str, JwksCache | KeySet],
        audience: str = DEFAULT_AUDIENCE,
    ) -> None:
        self.issuers = issuers
        self.audience = audience

    def verify(self, token: str) -> Actor:
        header, claims = _unverified_parts(token)
        keys = self.issuers.get(claims.iss)
        if keys is None:
            raise InvalidToken("the token's issuer is not trusted")
        key_set = keys.key_set(header.kid) if isinstance(keys, JwksCache) else keys
        try:
            decoded = jwt.decode(token, key_set, algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": claims.iss},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except JoseError as error:
            raise InvalidToken(_describe(error)) from None
        except (ValueError, TypeError):  # a shape joserfc did not expect: still not trusted
            raise InvalidToken("the token is not accepted") from None
        # The signature covers exactly the payload `claims` was read from.
        return actor_from_claims(claims)


def _unverified_parts(token: str) -> tuple[TokenHeader, TokenClaims]:
    """The header and claims of a compact JWS, shaped as the models declare, or InvalidToken.
    Read before the signature is checked (the issuer picks the keys), so nothing here trusts
    them."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("the token is too long")
    segments = token.split(".")
    if len(segments) != 3:
        raise InvalidToken("the token is not a JWT")
    try:
        header = json.loads(_b64decode(segments[0]))
        payload = json.loads(_b64decode(segments[1]))
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        raise InvalidToken("the token is not a JWT") from None
    try:
        parsed_header = TokenHeader.model_validate(header)
    except ValidationError as error:
        raise InvalidToken(first_problem(error, "header")) from None
    try:
        return parsed_header, TokenClaims.model_validate(payload)
    except ValidationError as error:
        raise InvalidToken(first_problem(error, "claims")) from None


def actor_from_claims(claims: TokenClaims) -> Actor:
    if claims.role != "patient" and not claims.org:
        raise InvalidToken("the token names no organisation (claim 'org', an HSA-id)")
    if claims.role == "patient" and not claims.patient:
        raise InvalidToken("a patient token names the person (claim 'patient')")
    return Actor(
        subject=claims.sub,
        role=claims.role,
        organization=claims.org,
        unit=claims.unit,
        scopes=tuple(claims.scope.split()),
        patient=claims.patient,
    )


def _describe(error: JoseError) -> str:
    name = type(error).__name__
    if "Expired" in name:
        return "the token has expired"
    if "Signature" in name or "BadSignature" in name:
        return "the token's signature does not verify"
    if "InvalidClaim" in name or "MissingClaim" in name:
        return f"the token's claims are not accepted ({error.description or name})"
    return f"the token is not accepted ({name})"


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class DevIssuer:
    """The embedded development issuer: an EC P-256 key kept in the key directory, shared by
    the services and `sip token`."""

    def __init__(self, key_dir: Path) -> None:
        self._key = ECKey.import_key(
            load_or_create_jwk(
                key_dir / DEV_KEY_FILE,
                lambda: ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex[:16]}),
            )
        )

    def public_keys(self) -> KeySet:
        return KeySet([ECKey.import_key(self._key.as_dict(private=False))])

    def mint(
        self,
        *,
        subject: str,
        role: str,
        organization: str | None = None,
        unit: str | None = None,
        scopes: tuple[str, ...] = (),
        patient: str | None = None,
        audience: str = DEFAULT_AUDIENCE,
        lifetime_seconds: int = 8 * 3600,
        now: float | None = None,
    ) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER,
            "aud": audience,
            "sub": subject,
            "iat": issued,
            "exp": issued + lifetime_seconds,
            "jti": uuid.uuid4().hex,
            "role": role,
            "scope": " ".join(scopes),
        }
        for name, value in (("org", organization), ("unit", unit), ("patient", patient)):
            if value:
                claims[name] = value
        return jwt.encode({"alg": "ES256", "kid": self._key.kid}, claims, self._key)


def default_scopes(role: str) -> tuple[str, ...]:
    """What a development token of each role may do (SMART v2)."""
    return {
        # Staff take a stay's steps (the Encounter operations) from their unit.
        "coordinator": (
            "user/CarePlan.cruds",
            "user/Consent.crus",
            "user/Communication.cru",
            "user/Encounter.rus",
            "user/*.rs",
        ),
        # A professional records consent and overrides a block in the care of the person.
        "professional": (
            "user/CarePlan.rus",
            "user/Consent.crus",
            "user/Communication.cru",
            "user/Encounter.rus",
            "user/*.rs",
        ),
        "integration": (
            "system/CarePlan.cruds",
            "system/Consent.cruds",
            "system/Subscription.cruds",
            "system/Communication.cru",
            "system/*.rs",
        ),
        # The whole log is granted by configuration, never by a default scope.
        "auditor": ("user/*.rs",),
        "patient": ("patient/CarePlan.rus", "patient/Consent.crus", "patient/*.rs"),
    }[role]
