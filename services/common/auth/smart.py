"""SMART on FHIR discovery: where a client gets a token these services accept.

A record system (SMART Backend Services) or an app (SMART App Launch 2.x) reads
`[base]/.well-known/smart-configuration` to find the authorization server before its first
call; the CapabilityStatement's `rest.security` says the same. Both come from the settings,
so they name the issuer the services really trust, never a hard-coded one:

- the issuer: the first of SIP_TRUSTED_ISSUERS (its JWKS as `jwks_uri`); without one, the
  development issuer of the embedded default, whose tokens `sip token` mints (it has no HTTP
  token endpoint, so none is named rather than an invented one);
- the token endpoint: SIP_TOKEN_ENDPOINT, else SIP_CLIENT_TOKEN_URL (the provider's token
  endpoint the SIP service itself uses);
- the authorization endpoint, for user-facing apps: SIP_AUTHORIZATION_ENDPOINT.

The scopes listed are the ones the roles' tokens carry (auth/tokens.py, default_scopes), so
a client asks for what will be honoured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from services.common.auth.scopes import CONTEXT_OF_ROLE
from services.common.auth.tokens import DEV_ISSUER, default_scopes

if TYPE_CHECKING:
    from services.common.settings import ServiceSettings

WELL_KNOWN = "/.well-known/smart-configuration"
# Served at the FHIR base, where SMART clients look, and at the root, where people do.
PATHS = (f"/fhir{WELL_KNOWN}", WELL_KNOWN)
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SMART_SERVICE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR",
        }
    ],
    "text": "OAuth2 bearer tokens (SMART on FHIR)",
}


@dataclass(frozen=True)
class SmartEndpoints:
    issuer: str
    jwks_uri: str | None
    token_endpoint: str | None
    authorization_endpoint: str | None

    @classmethod
    def of(cls, settings: ServiceSettings | None) -> SmartEndpoints:
        """The endpoints the settings name; an app built without settings is the embedded
        default's."""
        if settings is None:
            return cls(DEV_ISSUER, None, None, None)
        issuer, jwks_uri = next(iter(settings.trusted_issuers.items()), (DEV_ISSUER, None))
        return cls(
            issuer,
            jwks_uri,
            settings.token_endpoint or settings.client_token_url,
            settings.authorization_endpoint,
        )


def scopes_supported() -> list[str]:
    return sorted({scope for role in CONTEXT_OF_ROLE for scope in default_scopes(role)})


def smart_configuration(endpoints: SmartEndpoints) -> dict[str, Any]:
    """The SMART App Launch 2.x discovery document (only the endpoints that exist)."""
    user_facing = endpoints.authorization_endpoint is not None
    configuration: dict[str, Any] = {
        "issuer": endpoints.issuer,
        "jwks_uri": endpoints.jwks_uri,
        "token_endpoint": endpoints.token_endpoint,
        "authorization_endpoint": endpoints.authorization_endpoint,
        "grant_types_supported": ["client_credentials"]
        + (["authorization_code"] if user_facing else []),
        # Backend Services: a record system signs a JWT with its own key, no shared secret.
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "scopes_supported": scopes_supported(),
        "response_types_supported": ["code"] if user_facing else [],
        "code_challenge_methods_supported": ["S256"] if user_facing else [],
        "capabilities": [
            "client-confidential-asymmetric",
            "permission-v1",  # `user/CarePlan.read` is read as `user/CarePlan.rs`
            "permission-v2",
            "permission-patient",
            "permission-user",
            *(["launch-standalone"] if user_facing else []),
        ],
    }
    return {name: value for name, value in configuration.items() if value not in (None, [])}


def rest_security(endpoints: SmartEndpoints) -> dict[str, Any]:
    """The CapabilityStatement's `rest.security`: SMART on FHIR, with the oauth-uris
    extension where there is a token endpoint to name (its `token` is required)."""
    security: dict[str, Any] = {
        "cors": False,
        "service": [SMART_SERVICE],
        "description": f"Bearer tokens of {endpoints.issuer} (scopes and discovery: "
        f"[base]{WELL_KNOWN})"
        + ("" if endpoints.token_endpoint else "; on the embedded default, `sip token`"),
    }
    if endpoints.token_endpoint:
        uris = [{"url": "token", "valueUri": endpoints.token_endpoint}]
        if endpoints.authorization_endpoint:
            uris.append({"url": "authorize", "valueUri": endpoints.authorization_endpoint})
        security["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    return security


def endpoints_of_app(request: Request) -> SmartEndpoints:
    return SmartEndpoints.of(getattr(request.app.state, "settings", None))


router = APIRouter(tags=["SMART on FHIR"])


def _serve(path: str) -> None:
    @router.get(
        path,
        summary="SMART on FHIR discovery (no token needed)",
        responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
        response_class=JSONResponse,
    )
    def discovery(request: Request) -> JSONResponse:
        return JSONResponse(smart_configuration(endpoints_of_app(request)))


for _path in PATHS:
    _serve(_path)
