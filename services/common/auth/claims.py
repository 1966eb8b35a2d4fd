"""The shapes a bearer token's header and claims must have before anything trusts them.

A token is attacker-controlled input until its signature verifies, and a trusted issuer can
still send a claim of a surprising type; both are refused here, as a 401, by declared models
rather than by checks scattered through the verifier."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from contracts.actor import ROLES, ActorName, Role

# NumericDate (RFC 7519): whole seconds since 1970, up to the end of year 9999, so that any
# accepted value can become a datetime.
NumericDate = Annotated[int, Field(ge=0, le=253_402_300_799)]
Scope = Annotated[str, StringConstraints(max_length=4096)]


def _not_null(value: str | None) -> str:
    # An optional claim may be left out; sent as null it is a malformed token, not an absence.
    if value is None:
        raise ValueError("a claim that is present is not null")
    return value


OptionalName = Annotated[ActorName | None, AfterValidator(_not_null)]
OptionalDate = Annotated[NumericDate | None, AfterValidator(_not_null)]


KeyId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TokenHeader(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    alg: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    kid: Annotated[KeyId | None, AfterValidator(_not_null)] = None


class TokenClaims(BaseModel):
    """The registered claims the services check and the private ones they act on; other
    claims (`jti`, an issuer's own) are ignored."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    iss: ActorName
    aud: ActorName | Annotated[list[ActorName], Field(min_length=1, max_length=16)]
    sub: ActorName
    exp: NumericDate
    iat: OptionalDate = None
    nbf: OptionalDate = None
    role: Role
    org: OptionalName = None
    unit: OptionalName = None
    scope: Scope = ""
    patient: OptionalName = None


CLAIM_MEANINGS = {
    "iss": "issuer", "aud": "audience", "sub": "subject", "exp": "expiry", "iat": "issue time",
    "nbf": "start time", "role": "role", "org": "organisation", "unit": "unit",
    "scope": "scopes", "patient": "person",
}  # fmt: skip


def first_problem(error: ValidationError, part: str) -> str:
    """What is wrong with the token's `part` ("header" or "claims"), in words fit for a
    WWW-Authenticate header: the name of the field, never its value."""
    details: dict[str, Any] = error.errors(include_input=False, include_url=False)[0]
    location = details.get("loc") or ()
    if not location:
        return f"the token's {part} {'are' if part == 'claims' else 'is'} not a JSON object"
    name = str(location[0])
    if part == "claims" and name == "role":
        return f"the token's role must be one of {', '.join(ROLES)}"
    if part == "claims":
        field = f"claim '{name}' ({CLAIM_MEANINGS.get(name, 'unknown')})"
    else:
        field = f"header field '{name}'"
    problem = "is missing" if details.get("type") == "missing" else "has the wrong type or value"
    return f"the token's {field} {problem}"
