"""The consent service's operations, each declared once; the common pipeline
(services/common/operations) loads, checks, writes and answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from pydantic import Field

from contracts.actor import Actor
from contracts.canonical import CONSENT_CATEGORIES, CONSENT_CATEGORY_SYSTEM, CONSENT_FORMS
from contracts.consent_decision import ConsentCheckRequest
from contracts.identifiers import PERSON_ID_SYSTEMS, InvalidIdentifier, parse_person_identifier
from services.common.access_log import REFUSED
from services.common.access_log_views import BLOCK_OVERRIDE
from services.common.fhir_api import FhirError, FhirResponse, operation_outcome
from services.common.fhir_time import fhir_instant
from services.common.operations.declaration import Operation, OperationCall
from services.common.parameters import (
    Code,
    DateTime,
    HsaId,
    Identifier,
    Instant,
    OperationParameters,
    Reference,
    String,
)
from services.consent.domain import OVERRIDE_BASES


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
    basis: Code | None = None  # consent | emergency; required, refused by name when missing
    form: Code | None = None  # with basis consent: how the person gave it (written|oral|digital)
    until: DateTime | None = None  # at most the configured maximum ahead; absent: that maximum


def _professional_with_organization(actor: Actor) -> None:
    # A professional, not a coordinator: getting past a block is a judgement made in the care
    # of the person, by the one who needs the information, for their own organisation.
    if actor.role != "professional" or not actor.organization:
        raise FhirError(
            403, "forbidden", "a block is overridden by a professional of the organisation"
        )


def _a_block(call: OperationCall[Any]) -> None:
    if call.target.kind != "block":
        raise FhirError(404, "not-found", f"no block with id '{call.target.id}'")


def _override_until(call: OperationCall[BlockOverride]) -> datetime:
    longest = timedelta(hours=call.state.settings.block_override_max_hours)
    until = call.parameters.until
    if until is None:
        return call.at + longest
    if until > call.at + longest:
        raise FhirError(
            422,
            "invalid",
            f"until: an override lasts at most {call.state.settings.block_override_max_hours:g} "
            "hour(s)",
            rule="until",
        )
    return until


def _override_basis(p: BlockOverride) -> None:
    if p.basis not in OVERRIDE_BASES:
        raise FhirError(
            422,
            "required",
            "basis: the person's consent given now ('consent', with its 'form') or a declared "
            "emergency ('emergency')",
            rule="basis",
        )
    if p.basis == "consent" and p.form not in CONSENT_FORMS:
        raise FhirError(
            422,
            "required",
            f"form: how the person gave consent now, one of {', '.join(CONSENT_FORMS)}",
            rule="form",
        )


def override_block(call: OperationCall[BlockOverride]) -> FhirResponse:
    p = call.parameters
    _override_basis(p)
    until = _override_until(call)
    call.target.override_block(
        organization=call.actor.organization,
        reason=p.reason,
        until=until,
        basis=p.basis,
        form=p.form,
        by=call.by,
        at=call.at,
    )
    # The caller may not see the block itself (it names another organisation's data).
    return FhirResponse(
        operation_outcome(
            "informational",
            f"override recorded until {fhir_instant(until)}",
            severity="information",
        )
    )


OVERRIDE_BLOCK = Operation(
    "override-block",
    "Consent",
    "Lets the caller's organisation past a block for a while, on the person's consent given "
    "now or in an emergency; Parameters: reason, basis (consent | emergency), form (with "
    "consent), until (at most the configured maximum ahead, 24 h by default)",
    BlockOverride,
    override_block,
    may_call=_professional_with_organization,
    may_change=_a_block,
    disclosed=False,  # the caller may not see the block, only get past it
    detail=lambda call: (
        f"{BLOCK_OVERRIDE} for {call.actor.organization} "
        f"({call.parameters.basis}): {call.parameters.reason}"
    ),
    returns="OperationOutcome",
    interaction=BLOCK_OVERRIDE,
)


class CheckRequest(OperationParameters):
    patient: Identifier
    source: HsaId
    category: Code
    actor: HsaId | None = None  # only a trusted peer names another organisation than its own
    purpose: Code | None = None


class CheckDecision(OperationParameters):
    decision: Code
    reason: String
    consent: list[Reference] = Field(default_factory=list)
    validUntil: Instant | None = None


def _integration_only(actor: Actor) -> None:
    if actor.role != "integration":
        raise FhirError(403, "forbidden", "$check is for systems (role integration)")


def _trusted_peer(call: OperationCall[CheckRequest]) -> bool:
    return call.actor.subject in call.state.settings.trusted_peer_subjects


def _requester(call: OperationCall[CheckRequest]) -> str:
    """The organisation asking: the token's, or for a trusted peer the one it names."""
    named, own = call.parameters.actor, call.actor.organization
    if named is not None and named != own:
        if not _trusted_peer(call):
            raise FhirError(
                403,
                "forbidden",
                "actor: $check answers for the caller's own organisation only",
                rule="actor",
            )
        return named
    if not own:
        raise FhirError(403, "forbidden", "$check needs a token of an organisation")
    return own


def _check_request(p: CheckRequest, requester: str) -> ConsentCheckRequest:
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
        actor=requester,
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


def _refused_requester(call: OperationCall[CheckRequest], refusal: FhirError) -> FhirError:
    """A system asking on behalf of another organisation is logged for the source's auditors."""
    patient = call.parameters.patient
    call.state.resources["Consent"].access.log(
        call.actor,
        "disclosure-decision",
        outcome=REFUSED,
        patient={"system": str(patient.get("system") or ""), "value": patient["value"]}
        if isinstance(patient.get("value"), str) and patient["value"]
        else None,
        custodian=call.parameters.source,
        query=urlencode({"actor": call.parameters.actor or "", "source": call.parameters.source}),
        detail=f"refused: {refusal.diagnostics}",
    )
    return refusal


def check(call: OperationCall[CheckRequest]) -> FhirResponse:
    try:
        requester = _requester(call)
    except FhirError as refusal:
        raise _refused_requester(call, refusal) from None
    request, state = _check_request(call.parameters, requester), call.state
    candidates = state.index.search(patient=(request.patient_system, request.patient_value))
    decision = state.registry.check(
        request, candidates, call.at, guardians_required=state.settings.guardians_required
    )
    # Recorded before it is answered, with the whole reason: an auditor can later see why
    # something was or was not disclosed, and to whom. The asker is told less (see
    # contracts/consent_decision.py).
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
    answer = decision.as_answered(name_consents=_trusted_peer(call))
    return FhirResponse(answer.to_parameters())


CHECK = Operation(
    "check",
    "Consent",
    "Decides whether a disclosure to the caller's own organisation (or, for a trusted peer "
    "service, to the organisation in 'actor') is permitted; a deny says only 'not permitted'",
    CheckRequest,
    check,
    instance=False,
    changes_state=False,
    may_call=_integration_only,
    returns=CheckDecision,
)

CONSENT_OPERATIONS: list[Operation[Any]] = [CHECK, WITHDRAW, MARK_ENTERED_IN_ERROR, OVERRIDE_BLOCK]
