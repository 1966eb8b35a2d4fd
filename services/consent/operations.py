"""The consent service's operations, each declared once; the common pipeline
(services/common/operations) loads, checks, writes and answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from pydantic import Field

from contracts.actor import Actor
from contracts.canonical import CONSENT_CATEGORIES, CONSENT_CATEGORY_SYSTEM
from contracts.consent_decision import ConsentCheckRequest
from contracts.identifiers import PERSON_ID_SYSTEMS, InvalidIdentifier, parse_person_identifier
from services.common.fhir_api import FhirError, FhirResponse, operation_outcome
from services.common.fhir_time import fhir_instant
from services.common.operations.declaration import Operation, OperationCall
from services.common.parameters import (
    Code,
    DateTime,
    HsaId,
    Identifier,
    OperationParameters,
    Reference,
    String,
)


class Withdrawal(OperationParameters):
    reason: String


def withdraw(call: OperationCall[Withdrawal]) -> None:
    call.target.withdraw(reason=call.parameters.reason, withdrawn_by=call.by, at=call.at)


WITHDRAW = Operation(
    "withdraw",
    "Consent",
    "Withdraws the consent at once; Parameters: reason",
    Withdrawal,
    withdraw,
    patient_may=True,
    missing=lambda _: FhirError(
        422, "required", "$withdraw needs a 'reason' (valueString)", rule="reason"
    ),
)


class Correction(OperationParameters):
    reason: String


def _registered_by_caller(call: OperationCall[Any]) -> None:
    if call.actor.organization != call.target.custodian:
        raise FhirError(403, "forbidden", "the organisation that registered it corrects it")


def mark_entered_in_error(call: OperationCall[Correction]) -> None:
    call.target.mark_entered_in_error(reason=call.parameters.reason, by=call.by, at=call.at)


MARK_ENTERED_IN_ERROR = Operation(
    "mark-entered-in-error",
    "Consent",
    "Marks a registration made in error; Parameters: reason",
    Correction,
    mark_entered_in_error,
    may_change=_registered_by_caller,
)


class BlockOverride(OperationParameters):
    reason: String
    until: DateTime


def _staff_with_organization(actor: Actor) -> None:
    if actor.role not in ("coordinator", "professional") or not actor.organization:
        raise FhirError(403, "forbidden", "a block is overridden by staff, with a reason")


def _a_block(call: OperationCall[Any]) -> None:
    if call.target.kind != "block":
        raise FhirError(404, "not-found", f"no block with id '{call.target.id}'")


def override_block(call: OperationCall[BlockOverride]) -> FhirResponse:
    p = call.parameters
    call.target.override_block(
        organization=call.actor.organization, reason=p.reason, until=p.until, by=call.by, at=call.at
    )
    # The caller may not see the block itself (it names another organisation's data).
    return FhirResponse(
        operation_outcome(
            "informational",
            f"override recorded until {fhir_instant(p.until)}",
            severity="information",
        )
    )


OVERRIDE_BLOCK = Operation(
    "override-block",
    "Consent",
    "Lets the caller's organisation past a block for a while; Parameters: reason, until",
    BlockOverride,
    override_block,
    may_call=_staff_with_organization,
    may_change=_a_block,
    disclosed=False,  # the caller may not see the block, only get past it
    detail=lambda call: f"override-block for {call.actor.organization}: {call.parameters.reason}",
    returns="OperationOutcome",
)


class CheckRequest(OperationParameters):
    patient: Identifier
    actor: HsaId
    source: HsaId
    category: Code
    purpose: Code | None = None


class CheckDecision(OperationParameters):
    decision: Code
    reason: String
    consent: list[Reference] = Field(default_factory=list)


def _integration_only(actor: Actor) -> None:
    if actor.role != "integration":
        raise FhirError(403, "forbidden", "$check is for systems (role integration)")


def _check_request(p: CheckRequest) -> ConsentCheckRequest:
    if not isinstance(p.patient.get("value"), str) or not p.patient["value"]:
        raise FhirError(400, "invalid", "parameter 'patient' needs a valueIdentifier")
    if p.category not in CONSENT_CATEGORIES:
        raise FhirError(
            400,
            "invalid",
            f"parameter 'category' needs a valueCode from {CONSENT_CATEGORY_SYSTEM}: "
            + ", ".join(CONSENT_CATEGORIES),
        )
    request = ConsentCheckRequest(
        patient_system=p.patient.get("system") or "",
        patient_value=p.patient["value"],
        actor=p.actor,
        source=p.source,
        category=p.category,
        purpose=p.purpose,
    )
    if request.patient_system in PERSON_ID_SYSTEMS:
        try:
            parse_person_identifier(request.patient_system, request.patient_value)
        except InvalidIdentifier as error:
            raise FhirError(422, "invalid", f"patient: {error}") from None
    return request


def check(call: OperationCall[CheckRequest]) -> FhirResponse:
    request, state = _check_request(call.parameters), call.state
    candidates = state.index.search(patient=(request.patient_system, request.patient_value))
    decision = state.registry.check(
        request, candidates, call.at, guardians_required=state.settings.guardians_required
    )
    # Recorded before it is answered: an auditor can later see why something was or
    # was not disclosed, and to whom.
    state.resources["Consent"].access.log(
        call.actor,
        "disclosure-decision",
        patient={"system": request.patient_system, "value": request.patient_value},
        custodian=request.source,
        consents=decision.consents,
        query=urlencode(
            {
                "actor": request.actor,
                "source": request.source,
                "category": request.category,
                "purpose": request.purpose or "",
            }
        ),
        detail=f"{decision.decision}: {decision.reason}",
    )
    return FhirResponse(decision.to_parameters())


CHECK = Operation(
    "check",
    "Consent",
    "Decides whether a disclosure is permitted; Parameters in and out",
    CheckRequest,
    check,
    instance=False,
    changes_state=False,
    may_call=_integration_only,
    returns=CheckDecision,
)

CONSENT_OPERATIONS: list[Operation[Any]] = [CHECK, WITHDRAW, MARK_ENTERED_IN_ERROR, OVERRIDE_BLOCK]
