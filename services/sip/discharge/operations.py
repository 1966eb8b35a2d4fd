"""The stay's steps as Encounter operations, each declared once (services/common/operations):
`POST /fhir/Encounter/$admit`, then `POST /fhir/Encounter/{id}/$<step>` with a `Parameters`
body. The common pipeline loads the stay through its disclosure rule (404 for whom it does not
concern), honours `If-Match`, runs the stay's command and saves it with its access-log record
in one write. Each step is dated by the server's clock when it is recorded; a step that tells
another organisation something takes the person's consent (asked fresh of the consent
service) or, with `judgement`, a recorded judgement that secrecy does not prevent it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from contracts.actor import Actor
from contracts.identifiers import InvalidIdentifier, parse_person_identifier
from services.common.fhir_api import FhirError
from services.common.operations.declaration import NoParameters, Operation, OperationCall
from services.common.parameters import (
    Boolean,
    Code,
    DateTime,
    HsaId,
    Identifier,
    OperationParameters,
    String,
)
from services.sip.consent_gate import ConsentServiceUnavailable
from services.sip.discharge.application import STAY_RESOURCE_TYPE, Stays
from services.sip.discharge.payment_report import PAYMENT_REPORT
from services.sip.discharge.stay import Stay
from services.sip.disclosure import consent_service_down
from services.sip.messages.notices import confirm_receipt as notice_receipt
from services.sip.messages.notices import notice_of, send_notice

# The parameter each of the stay's rules is about, so that a 409 names the element to change.
RULE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "notice-to-units-concerned": ("recipient",),
    "disclosure-requires-consent-or-judgement": ("judgement",),
    "withdraw-when-ready": ("reason",),
}
STAFF = ("professional", "coordinator", "integration")
# A parameter's name (FHIR's camelCase) as the stay's command calls it.
ARGUMENT = {"alreadyExisted": "already_existed"}


def _staff_of_a_unit(actor: Actor) -> None:
    """Every step records the organisation and unit it was taken from."""
    if actor.role not in STAFF:
        raise FhirError(403, "forbidden", "the stay's steps are taken by care staff")
    if not actor.organization or not actor.unit:
        raise FhirError(403, "forbidden", "a step of the stay is taken from a unit")


def _stays(call: OperationCall[Any]) -> Stays:
    # Asked fresh, uncached, as $activate does: the consent recorded on the step is the one
    # the consent service names now.
    return Stays(call.state.plans, call.state.consent_gate_uncached)


def _basis(
    call: OperationCall[Any], stay: Stay, told: set[str], judgement: str | None
) -> dict[str, Any]:
    """The step's legal basis; the consent service unreachable is a 503, nothing written."""
    try:
        return _stays(call).legal_basis(stay, call.by, told, judgement)
    except ConsentServiceUnavailable as error:
        raise consent_service_down(error) from None


def _step(
    name: str, documentation: str, parameters: Any, command: Any, instance: bool = True
) -> Operation[Any]:
    return Operation(
        name,
        STAY_RESOURCE_TYPE,
        documentation,
        parameters,
        command,
        instance=instance,
        may_call=_staff_of_a_unit,
        rule_parameters=RULE_PARAMETERS,
    )


class Admit(OperationParameters):
    patient: Identifier
    ward: HsaId
    admittedAt: DateTime | None = None
    # The stay's business identifiers (services/sip/discharge/admission.py).
    identifier: list[Identifier] = Field(default_factory=list)


def admitted(call: OperationCall[Admit], identifiers: list[dict[str, str]]) -> Stay:
    """The stay the admission makes, not yet saved: checked before anything is written."""
    p = call.parameters
    admitted_at = p.admittedAt or call.at
    if admitted_at > call.at:
        raise FhirError(
            400, "invalid", "admittedAt is not in the future", rule="admission-not-in-future",
            expression="Parameters.parameter.where(name='admittedAt')",
        )  # fmt: skip
    try:
        person = parse_person_identifier(p.patient.get("system"), p.patient.get("value"))
    except InvalidIdentifier as error:
        raise FhirError(
            422, "invalid", f"patient: {error}",
            expression="Parameters.parameter.where(name='patient')",
        ) from None  # fmt: skip
    subject = {"system": person.system, "value": person.value}
    return Stay.admit(
        subject=subject, ward=p.ward, admitted_at=admitted_at, by=call.by, identifiers=identifiers
    )


class JudgeCareNeeded(OperationParameters):
    principal: list[Code] = Field(default_factory=list)


def judge_care_needed(call: OperationCall[JudgeCareNeeded]) -> None:
    call.target.judge_care_needed(
        principals=list(call.parameters.principal), at=call.at, by=call.by
    )


class Recipient(OperationParameters):
    organization: HsaId
    unit: HsaId
    kind: Code


class SendAdmissionNotice(OperationParameters):
    recipient: list[Recipient] = Field(default_factory=list)
    estimatedDischarge: DateTime
    judgement: String | None = None


def send_admission_notice(call: OperationCall[SendAdmissionNotice]) -> None:
    p, stay = call.parameters, call.target
    recipients = [r.model_dump() for r in p.recipient]
    told = {r["organization"] for r in recipients}
    basis = _basis(call, stay, told, p.judgement)
    # Inside the pipeline's write: the stay's notice and its message (a Communication), or
    # neither.
    send_notice(
        call.state.plans, stay, recipients=recipients, estimated_discharge=p.estimatedDischarge,
        legal_basis=basis, at=call.at, by=call.by,
    )  # fmt: skip


def confirm_receipt(call: OperationCall[NoParameters]) -> None:
    """The stay's receipt and, where the notice is a message, its read receipt: one write."""
    plans = call.state.plans
    stay = call.target
    notice_receipt(plans, stay, notice_of(plans, stay.id), at=call.at, by=call.by)


class Judged(OperationParameters):
    judgement: String | None = None


def _disclosing(step: str, **fixed: Any) -> Any:
    """A step that tells the stay's other organisations: on consent or a judgement."""

    def command(call: OperationCall[Any]) -> None:
        stay = call.target
        told = Stays.others(stay, call.by)
        basis = _basis(call, stay, told, call.parameters.judgement)
        values = {
            ARGUMENT.get(name, name): value
            for name, value in call.parameters.model_dump().items()
            if name != "judgement"
        }
        getattr(stay, step)(legal_basis=basis, at=call.at, by=call.by, **fixed, **values)

    return command


class NameCareContact(OperationParameters):
    name: String
    alreadyExisted: Boolean = False
    judgement: String | None = None


class WithdrawReady(OperationParameters):
    reason: String
    judgement: String | None = None


class CallSip(OperationParameters):
    title: String | None = None
    judgement: String | None = None


def call_sip(call: OperationCall[CallSip]) -> None:
    stay, p = call.target, call.parameters
    plans = call.state.plans
    try:
        plan = _stays(call).sip_plan(
            stay, title=p.title, at=call.at, by=call.by, judgement=p.judgement
        )
    except ConsentServiceUnavailable as error:
        raise consent_service_down(error) from None
    plans.save(plan, stay)  # inside the pipeline's write: the plan, its link and the log


class Reason(OperationParameters):
    reason: String


# Routed by services/sip/discharge/admission.py: at most once per identifier, as a create.
ADMIT = _step("admit", "The ward admits the person (the stay begins); answers the Encounter. "
              "With identifier (repeated: the hospital's encounter number, a form's submission "
              "key) and If-None-Exist: identifier=system|value, the same admission sent again "
              "answers the stay it made; an identifier is one admission of one person.",
              Admit, None, instance=False)  # fmt: skip

OPERATIONS: list[Operation[Any]] = [
    ADMIT,
    _step("judge-care-needed", "The physician judges that the person may need care after "
          "discharge from the region's outpatient care and/or the municipality (principal, "
          "repeated).", JudgeCareNeeded, judge_care_needed),
    _step("send-admission-notice", "The admission notice (inskrivningsmeddelande) to the units "
          "concerned (recipient parts: organization, unit, kind), with the estimated discharge.",
          SendAdmissionNotice, send_admission_notice),
    _step("confirm-receipt", "A unit the notice went to confirms its receipt (from that unit).",
          NoParameters, confirm_receipt),
    _step("name-care-contact", "Primary care names the fixed care contact (fast vårdkontakt).",
          NameCareContact, _disclosing("name_care_contact")),
    _step("notify-ready", "The person is ready for discharge (utskrivningsklar).", Judged,
          _disclosing("notify_ready")),
    _step("withdraw-ready", "The person is no longer ready: the clock stops.", WithdrawReady,
          _disclosing("withdraw_ready")),
    _step("call-sip", "The fixed care contact's organisation calls the SIP: a draft CarePlan "
          "with the stay's organisations invited, linked to the stay.", CallSip, call_sip),
    _step("transfer-information", "The ward transfers what the units need (no later than the "
          "day of discharge).", Judged, _disclosing("transfer_information")),
    _step("discharge", "The stay ends.", NoParameters,
          lambda call: call.target.discharge(at=call.at, by=call.by)),
    _step("record-outpatient-care-unavailable", "The region records that its outpatient care "
          "is not available (the municipality does not pay for the waiting days).", Reason,
          lambda call: call.target.record_outpatient_care_unavailable(
              reason=call.parameters.reason, at=call.at, by=call.by)),
    PAYMENT_REPORT,
]  # fmt: skip
