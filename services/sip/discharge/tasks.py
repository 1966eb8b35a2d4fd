"""The stay's duties as FHIR `Task`: a read-only view of the stay's events and its legal clock
(services/sip/discharge/clock.py), no aggregate of its own.

Four duties, each owned by the unit that must do it:

- send the admission notice: the hospital's ward, due 24 hours after admission (or the later
  judgement that care will be needed);
- name the fixed care contact: the primary-care unit the notice went to (the law sets no
  period: the Task has no due date);
- call the SIP: the fixed care contact's unit (else the primary-care unit), due 72 hours after
  each ready notice whose clock ran (one Task per notice; a notice withdrawn before its due
  time leaves its Task cancelled);
- transfer the information: the ward, due at the end of the day of discharge (until the
  discharge, of the estimated day, provisional and never overdue).

A Task is rendered from the stay as its reader may see it (`redact_stay`): a duty whose own
step or whose starting step is withheld from the reader is not shown at all (shown, it would
look undone, or tell when the person was ready). Its id is `<stay id>.<duty>` (`.sip-call-2`
for the second ready notice's).

Pure: the instant (`now`) decides `overdue` and is given by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.canonical import CANONICAL_BASE
from services.common.fhir_time import fhir_instant
from services.sip.discharge.clock import LATE, MET, OVERDUE, ClockRules, Deadline, deadlines
from services.sip.discharge.disclosure import (
    CARE_CONTACT,
    INFORMATION_TRANSFER,
    READY_NOTICE,
    READY_WITHDRAWAL,
)
from services.sip.discharge.disclosure import SIP_CALL as SIP_CALL_STEP
from services.sip.discharge.stay import ADMISSION_NOTICE, SIP_CALL, Stay
from services.sip.discharge.stay import INFORMATION_TRANSFER as TRANSFER_DUTY
from services.sip.fhir_mapping import organization_reference
from services.sip.redaction import withheld_of

TASK_RESOURCE_TYPE = "Task"
CARE_CONTACT_DUTY = "care-contact"
TASK_DUTIES = (ADMISSION_NOTICE, CARE_CONTACT_DUTY, SIP_CALL, TRANSFER_DUTY)
TASK_STATUSES = ("requested", "in-progress", "completed", "cancelled")
DUTY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/discharge-duty"
EXT_OVERDUE = f"{CANONICAL_BASE}/StructureDefinition/task-overdue"
EXT_DEADLINE_STATE = f"{CANONICAL_BASE}/StructureDefinition/task-deadline-state"
EXT_PROVISIONAL = f"{CANONICAL_BASE}/StructureDefinition/task-due-provisional"
DESCRIPTIONS = {
    ADMISSION_NOTICE: "Skicka inskrivningsmeddelande (inom 24 timmar)",
    CARE_CONTACT_DUTY: "Utse fast vårdkontakt",
    SIP_CALL: "Kalla till SIP (inom 3 dagar efter meddelandet om utskrivningsklar)",
    TRANSFER_DUTY: "Överför information (senast på utskrivningsdagen)",
}
# The withheld steps that hide a duty's Task from its reader.
HIDDEN_BY = {
    CARE_CONTACT_DUTY: {CARE_CONTACT},
    SIP_CALL: {SIP_CALL_STEP, READY_NOTICE, READY_WITHDRAWAL},
    TRANSFER_DUTY: {INFORMATION_TRANSFER},
}


@dataclass(frozen=True)
class Duty:
    """One duty of the stay, as a Task shows it."""

    stay: Stay
    key: str  # the id's suffix: the duty, numbered from the second SIP call on
    duty: str
    organization: str  # the owner's organisation ...
    unit: str | None  # ... and unit
    authored: datetime  # when the duty arose
    due: datetime | None
    done_at: datetime | None
    status: str
    state: str | None  # the deadline's: met, late, open, overdue (None: no deadline)
    provisional: bool = False

    @property
    def id(self) -> str:
        return f"{self.stay.id}.{self.key}"

    @property
    def overdue(self) -> bool:
        return self.state == OVERDUE


def split_task_id(task_id: str) -> tuple[str, str]:
    """(stay id, key) of `<stay id>.<key>`."""
    stay_id, _, key = task_id.partition(".")
    return stay_id, key


def duties(stay: Stay, now: datetime, rules: ClockRules | None = None) -> list[Duty]:
    """The stay's duties (as the reader sees the stay) at `now`, in the order they arose."""
    rules = rules or ClockRules()
    hidden = {mark.kind for mark in withheld_of(stay)}
    clock = deadlines(stay, rules)
    found: list[Duty] = []
    notice = next((d for d in clock if d.duty == ADMISSION_NOTICE), None)
    if notice is not None and stay.care_need_judged is not None:
        since = max(stay.admitted.at, stay.care_need_judged.at)
        found.append(_duty(stay, ADMISSION_NOTICE, notice, now, stay.ward, since))
    primary_care = stay.primary_care
    noticed = stay.admission_notice
    if noticed and primary_care and not hidden & HIDDEN_BY[CARE_CONTACT_DUTY]:
        contact = stay.care_contact
        received = primary_care.received is not None
        found.append(
            Duty(
                stay, CARE_CONTACT_DUTY, CARE_CONTACT_DUTY, primary_care.organization,
                primary_care.unit, noticed.at, None, contact.named.at if contact else None,
                "completed" if contact else "in-progress" if received else "requested", None,
            )
        )  # fmt: skip
    if not hidden & HIDDEN_BY[SIP_CALL]:
        found += _sip_calls(stay, now, rules)
    transfer = next((d for d in clock if d.duty == TRANSFER_DUTY), None)
    if transfer is not None and not hidden & HIDDEN_BY[TRANSFER_DUTY]:
        assert stay.admission_notice is not None
        found.append(_duty(stay, TRANSFER_DUTY, transfer, now, stay.ward,
                           stay.admission_notice.at))  # fmt: skip
    return found


def _duty(
    stay: Stay, key: str, deadline: Deadline, now: datetime, unit: str | None, authored: datetime
) -> Duty:
    state = deadline.state(now)
    return Duty(
        stay, key, deadline.duty, deadline.owner or stay.organization, unit, authored,
        deadline.due, deadline.done_at, "completed" if state in (MET, LATE) else "requested",
        state, deadline.provisional,
    )  # fmt: skip


def _sip_calls(stay: Stay, now: datetime, rules: ClockRules) -> list[Duty]:
    """One Task per ready notice when both principals are needed: the clock's deadline, or
    cancelled when the notice was withdrawn before it (the clock stopped)."""
    if not stay.needs_both_principals:
        return []
    contact, primary_care = stay.care_contact, stay.primary_care
    if contact is not None:
        organization, unit = contact.organization, contact.unit
    elif primary_care is not None:
        organization, unit = primary_care.organization, primary_care.unit
    else:
        return []
    called = stay.sip_called.at if stay.sip_called else None
    found = []
    for number, period in enumerate(stay.ready_periods, start=1):
        key = SIP_CALL if number == 1 else f"{SIP_CALL}-{number}"
        deadline = Deadline(SIP_CALL, organization, period.notified.at + rules.sip_call_within,
                            called)  # fmt: skip
        stopped = period.withdrawn is not None and period.withdrawn.at < deadline.due
        if stopped and (called is None or called > period.withdrawn.at):  # type: ignore[union-attr]
            found.append(
                Duty(stay, key, SIP_CALL, organization, unit, period.notified.at, deadline.due,
                     None, "cancelled", None)
            )  # fmt: skip
            continue
        duty = _duty(stay, key, deadline, now, unit, period.notified.at)
        if duty.status == "requested" and contact is not None:
            duty = Duty(**{**duty.__dict__, "status": "in-progress"})  # the contact is at it
        found.append(duty)
    return found


def task_to_fhir(duty: Duty) -> dict[str, Any]:
    stay = duty.stay
    encounter = {"reference": f"Encounter/{stay.id}"}
    resource: dict[str, Any] = {
        "resourceType": TASK_RESOURCE_TYPE,
        "id": duty.id,
        "meta": {"versionId": str(stay.version), "lastUpdated": fhir_instant(stay.modified_on)},
        "extension": [{"url": EXT_OVERDUE, "valueBoolean": duty.overdue}],
        "status": duty.status,
        "intent": "order",
        "code": {"coding": [{"system": DUTY_SYSTEM, "code": duty.duty}]},
        "description": DESCRIPTIONS[duty.duty],
        "focus": encounter,
        "for": {"type": "Patient", "identifier": dict(stay.subject)},
        "encounter": encounter,
        "authoredOn": fhir_instant(duty.authored),
        "owner": organization_reference(duty.organization, duty.unit),
    }
    if duty.state is not None:
        resource["extension"].append({"url": EXT_DEADLINE_STATE, "valueCode": duty.state})
    if duty.provisional:
        resource["extension"].append({"url": EXT_PROVISIONAL, "valueBoolean": True})
    if duty.due is not None:
        resource["restriction"] = {"period": {"end": fhir_instant(duty.due)}}
    if duty.done_at is not None:
        resource["executionPeriod"] = {"end": fhir_instant(duty.done_at)}
    return resource
