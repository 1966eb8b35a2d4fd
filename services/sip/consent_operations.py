"""The plan's operations that ask the consent service: `$activate` (writes down the consents
it relied on) and `$as-of` (the plan as it stood, as the caller may see it, with those
consents as they stood)."""

from __future__ import annotations

from typing import Any

import httpx

from services.common.fhir_api import FhirResponse, fhir_base
from services.common.fhir_time import fhir_instant
from services.common.operations.declaration import NoParameters, Operation, OperationCall
from services.common.parameters import DateTime, OperationParameters
from services.sip.application import activate_if_permitted
from services.sip.consent_gate import ConsentServiceUnavailable
from services.sip.disclosure import consent_service_down
from services.sip.permissions import guard


def activate(call: OperationCall[NoParameters]) -> None:
    try:
        # Asked each time, never from the cache: a decision that is written down is fresh.
        gate = call.state.consent_gate_uncached
        activate_if_permitted(call.target, gate, at=call.at, by=call.by)
    except ConsentServiceUnavailable as error:
        raise consent_service_down(error) from None


ACTIVATE = Operation(
    "activate",
    "CarePlan",
    "Activates a draft plan when the consent service permits it",
    NoParameters,
    activate,
    may_call=guard("activate").may_call,
    may_change=guard("activate").may_change,  # the role matrix's row (services/sip/permissions.py)
)


class AsOf(OperationParameters):
    instant: DateTime


def as_of(call: OperationCall[AsOf]) -> FhirResponse:
    """The plan as it stood at an instant, with the consents it relied on as they stood
    then in the consent service (asked with the caller's own token)."""
    at = call.parameters.instant
    access = call.state.resources["CarePlan"].access
    # Decided on the plan as it is now, applied to the plan as it was (as `_at` and vread).
    then = access.redact(call.state.plans.version_at(call.target.id, at), call.disclosure)
    plan = {
        "fullUrl": f"{fhir_base(call.request)}/CarePlan/{then.id}",
        "resource": call.state.resources["CarePlan"].to_fhir(then),
    }
    entries = [plan, *(_consent_then(call, consent_id) for consent_id in then.consents)]
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": fhir_instant(at),
            "entry": [entry for entry in entries if entry is not None],
        }
    )


def _consent_then(call: OperationCall[AsOf], consent_id: str) -> dict[str, Any] | None:
    settings = call.state.settings
    url = f"{settings.consent_service_url}/fhir/Consent/{consent_id}"
    try:
        response = httpx.get(
            url,
            # From the parameters, not the query: by POST the instant is in the body.
            params={"_at": fhir_instant(call.parameters.instant)},
            headers={"Authorization": call.request.headers.get("authorization", "")},
            timeout=settings.consent_timeout_seconds,
        )
    except httpx.HTTPError as error:
        raise consent_service_down(ConsentServiceUnavailable(type(error).__name__)) from None
    if response.status_code == 404:  # the caller may not see that consent
        return None
    if response.status_code != 200:
        raise consent_service_down(ConsentServiceUnavailable(f"HTTP {response.status_code}"))
    return {"fullUrl": url, "resource": response.json()}


AS_OF = Operation(
    "as-of",
    "CarePlan",
    "The plan as it stood at an instant, with the consents it relied on then",
    AsOf,
    as_of,
    changes_state=False,
    patient_may=True,
    method="GET",
    returns="Bundle",
)
