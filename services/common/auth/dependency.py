"""FastAPI dependencies: who is calling (401 if unknown) and may they do this (403)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from contracts.actor import Actor
from services.common.auth.scopes import CONTEXT_OF_ROLE, Interaction, permits
from services.common.auth.tokens import InvalidToken, TokenVerifier
from services.common.fhir_api import FhirError

REALM = "sip-case-service"


def unauthorized(description: str | None) -> FhirError:
    challenge = f'Bearer realm="{REALM}"'
    if description:
        challenge += f', error="invalid_token", error_description="{_quotable(description)}"'
    return FhirError(
        401,
        "login",
        description or "a bearer token is required",
        headers={"WWW-Authenticate": challenge},
    )


def _quotable(text: str) -> str:
    """Only what an RFC 6750 error_description may hold (printable ASCII without `"` and
    `\\`), so no wording of a refusal can break the header or fail to encode."""
    return "".join(char for char in text if " " <= char <= "~" and char not in '"\\')


def authenticate(request: Request) -> Actor:
    verifier: TokenVerifier = request.app.state.token_verifier
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized(None)
    try:
        actor = verifier.verify(token.strip())
    except InvalidToken as error:
        raise unauthorized(str(error)) from None
    request.state.actor = actor
    return actor


def authorize(
    resource_type: str, interaction: Interaction, *, explicit_scope: bool = False
) -> Callable[[Request], Actor]:
    """A dependency: the caller, if their role and scopes allow `interaction` on the type.
    `explicit_scope`: a wildcard scope (`user/*.rs`) is not enough."""

    def dependency(request: Request) -> Actor:
        actor = authenticate(request)
        if actor.role == "auditor" and interaction not in ("r", "s"):
            raise FhirError(403, "forbidden", "an auditor reads history and logs, changes nothing")
        context = CONTEXT_OF_ROLE[actor.role]
        if not permits(
            actor.scopes, context, resource_type, interaction, wildcard=not explicit_scope
        ):
            raise FhirError(
                403,
                "forbidden",
                f"the token's scopes do not allow this; it needs "
                f"{context}/{resource_type}.{interaction}",
            )
        return actor

    return dependency
