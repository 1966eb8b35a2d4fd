"""SMART on FHIR scopes: v2 (`user/CarePlan.cruds`) and v1 (`user/CarePlan.read`)."""

from __future__ import annotations

import re
from typing import Literal

Interaction = Literal["c", "r", "u", "d", "s"]

_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.(\*|read|write|[cruds]+)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}

# Which scope context each role's tokens must use.
CONTEXT_OF_ROLE = {
    "integration": "system",
    "patient": "patient",
    "coordinator": "user",
    "professional": "user",
    "auditor": "user",
}


def permits(
    scopes: tuple[str, ...],
    context: str,
    resource_type: str,
    interaction: str,
    *,
    wildcard: bool = True,
) -> bool:
    """`wildcard=False`: only a scope naming the type itself counts, not `*`."""
    for scope in scopes:
        match = _SCOPE.match(scope)
        if not match:
            continue
        scope_context, scope_type, rights = match.groups()
        accepted = (resource_type, "*") if wildcard else (resource_type,)
        if scope_context != context or scope_type not in accepted:
            continue
        if interaction in _V1.get(rights, rights):
            return True
    return False
