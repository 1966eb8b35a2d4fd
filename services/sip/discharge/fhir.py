"""A stay as FHIR `Encounter` (class IMP), rendered from the stay as its reader may see it
(`redact_stay`): what the reader may not see is absent, and marked as withheld as in a plan.

Encounter has no elements for the LSU steps, so they are extensions under the service's
canonical base: the notice with its recipients and receipts, the estimated discharge, the
ready notices (with their withdrawals), the fixed care contact, the SIP plan the stay called
and the information transfers. `status` is FHIR's (in-progress until the discharge, then
finished); the stay's own (admitted | ready | discharged) is the `stay-status` extension."""

from __future__ import annotations

from typing import Any

from contracts.canonical import CANONICAL_BASE
from contracts.identifiers import HSA_ID_SYSTEM
from services.common.fhir_time import fhir_instant
from services.sip.discharge.stay import Stay, Step
from services.sip.fhir_mapping import marked_withheld, organization_reference
from services.sip.redaction import withheld_of

_EXT = f"{CANONICAL_BASE}/StructureDefinition"
EXT_STAY_STATUS = f"{_EXT}/stay-status"
EXT_CARE_NEEDED = f"{_EXT}/stay-care-needed"
EXT_ADMISSION_NOTICE = f"{_EXT}/stay-admission-notice"
EXT_ESTIMATED_DISCHARGE = f"{_EXT}/stay-estimated-discharge"
EXT_READY = f"{_EXT}/stay-ready-for-discharge"
EXT_CARE_CONTACT = f"{_EXT}/stay-fixed-care-contact"
EXT_SIP_PLAN = f"{_EXT}/stay-sip-plan"
EXT_INFORMATION_TRANSFER = f"{_EXT}/stay-information-transfer"
EXT_OUTPATIENT_UNAVAILABLE = f"{_EXT}/stay-outpatient-care-unavailable"
EXT_DEADLINE_MISSED = f"{_EXT}/stay-deadline-missed"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# Encounter.status (R4) of the stay's own status.
ENCOUNTER_STATUS = {"admitted": "in-progress", "ready": "in-progress", "discharged": "finished"}
ENCOUNTER_STATUSES = ("in-progress", "finished")


def _unit(organization: str, unit: str) -> dict[str, Any]:
    return {"url": "unit", "valueReference": organization_reference(organization, unit)}


def _when(url: str, step: Step) -> dict[str, Any]:
    return {"url": url, "valueDateTime": fhir_instant(step.at)}


def _admission_notice(stay: Stay) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if stay.admission_notice is not None:
        parts.append(_when("sent", stay.admission_notice))
    for recipient in stay.recipients.values():
        received = [_when("received", recipient.received)] if recipient.received else []
        parts.append(
            {
                "url": "recipient",
                "extension": [
                    _unit(recipient.organization, recipient.unit),
                    {"url": "kind", "valueCode": recipient.kind},
                    *received,
                ],
            }
        )
    return {"url": EXT_ADMISSION_NOTICE, "extension": parts}


def _step_extensions(stay: Stay) -> list[dict[str, Any]]:
    """The stay's steps, as the extensions of its Encounter."""
    extensions: list[dict[str, Any]] = [{"url": EXT_STAY_STATUS, "valueCode": stay.status}]
    extensions += [{"url": EXT_CARE_NEEDED, "valueCode": p} for p in stay.care_needed]
    if stay.admission_notice is not None:
        extensions.append(_admission_notice(stay))
    if stay.estimated_discharge is not None:
        extensions.append(
            {
                "url": EXT_ESTIMATED_DISCHARGE,
                "valueDateTime": fhir_instant(stay.estimated_discharge),
            }
        )
    for period in stay.ready_periods:
        parts = [_when("notified", period.notified)]
        if period.withdrawn is not None:
            parts.append(_when("withdrawn", period.withdrawn))
        if period.withdrawal_reason:
            parts.append({"url": "reason", "valueString": period.withdrawal_reason})
        extensions.append({"url": EXT_READY, "extension": parts})
    if stay.care_contact is not None:
        contact = stay.care_contact
        extensions.append(
            {
                "url": EXT_CARE_CONTACT,
                "extension": [
                    {"url": "name", "valueString": contact.name},
                    _unit(contact.organization, contact.unit),
                    {"url": "already-existed", "valueBoolean": contact.already_existed},
                    _when("named", contact.named),
                ],
            }
        )
    if stay.sip_called is not None and stay.sip_plan_id:
        plan = {"reference": f"CarePlan/{stay.sip_plan_id}"}
        extensions.append(
            {
                "url": EXT_SIP_PLAN,
                "extension": [
                    {"url": "plan", "valueReference": plan},
                    _when("called", stay.sip_called),
                ],
            }
        )
    extensions += [_when(EXT_INFORMATION_TRANSFER, t) for t in stay.information_transfers]
    if stay.outpatient_care_unavailable is not None:
        extensions.append(
            {
                "url": EXT_OUTPATIENT_UNAVAILABLE,
                "extension": [
                    _when("recorded", stay.outpatient_care_unavailable),
                    {"url": "reason", "valueString": stay.outpatient_care_unavailable_reason},
                ],
            }
        )
    return extensions


def _missed_deadlines(stay: Stay) -> list[dict[str, Any]]:
    extensions = []
    for missed in stay.deadlines_missed:
        owner = (
            [{"url": "owner", "valueReference": organization_reference(missed.owner)}]
            if missed.owner
            else []
        )
        extensions.append(
            {
                "url": EXT_DEADLINE_MISSED,
                "extension": [
                    {"url": "duty", "valueCode": missed.duty},
                    {"url": "due", "valueDateTime": fhir_instant(missed.due)},
                    *owner,
                    _when("recorded", missed.recorded),
                ],
            }
        )
    return extensions


def stay_to_fhir(stay: Stay) -> dict[str, Any]:
    extensions = [*_step_extensions(stay), *_missed_deadlines(stay)]
    period = {"start": fhir_instant(stay.admitted.at)}
    if stay.discharged is not None:
        period["end"] = fhir_instant(stay.discharged.at)
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": str(stay.id),
        "meta": {"versionId": str(stay.version), "lastUpdated": fhir_instant(stay.modified_on)},
        **({"identifier": list(stay.identifiers)} if stay.identifiers else {}),
        "extension": extensions,
        "status": ENCOUNTER_STATUS[stay.status],
        "class": {"system": ACT_CODE_SYSTEM, "code": "IMP", "display": "inpatient encounter"},
        "subject": {"type": "Patient", "identifier": dict(stay.subject)},
        "period": period,
        "location": [{"location": {"identifier": {"system": HSA_ID_SYSTEM, "value": stay.ward}}}],
        "serviceProvider": organization_reference(stay.organization),
    }
    return marked_withheld(resource, withheld_of(stay))
