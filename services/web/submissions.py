"""One form, one resource: a create that reaches the service twice (a double click, a reload
after a slow answer, the back button and submit again) makes the resource once.

Each start form carries a random submission key. The create names it as a business
identifier in the web client's own namespace and sends `If-None-Exist` on it, so the service
answers a repeated post with what the first one made (services/common/business_identifiers.py
claims the identifier in the same transaction as the events, so two concurrent posts cannot
both create)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from contracts.canonical import CANONICAL_BASE

SUBMISSION_FIELD = "submission"
SUBMISSION_SYSTEM = f"{CANONICAL_BASE}/NamingSystem/web-client-submission"
_KEY = re.compile(r"^[0-9a-f]{32}$")


def new_submission() -> str:
    return secrets.token_hex(16)


def submission_of(form: Any) -> str:
    """The key the form was rendered with; a fresh one when it is missing or not one of ours
    (a form from before this key existed, or a hand-made post), which only gives up the
    protection, never merges two different posts."""
    key = str(form.get(SUBMISSION_FIELD, ""))
    return key if _KEY.match(key) else new_submission()


def submission_identifier(key: str) -> dict[str, str]:
    return {"system": SUBMISSION_SYSTEM, "value": key}


def condition_on(key: str) -> str:
    """The `If-None-Exist` condition that makes the submission's create happen once."""
    return f"identifier={SUBMISSION_SYSTEM}|{key}"


def identified_once(resource: dict[str, Any], key: str) -> tuple[dict[str, Any], str]:
    """The resource with the submission's identifier added, and its `If-None-Exist`."""
    identifier = submission_identifier(key)
    identified = {**resource, "identifier": [*resource.get("identifier", []), identifier]}
    return identified, condition_on(key)


def submitted_once(parameters: list[dict[str, Any]], key: str) -> tuple[list[dict[str, Any]], str]:
    """An operation that makes a resource (`Encounter/$admit`): its parameters with the
    submission's `identifier`, and its `If-None-Exist`."""
    identifier = {"name": "identifier", "valueIdentifier": submission_identifier(key)}
    return [*parameters, identifier], condition_on(key)
