"""A meeting invitation as FHIR: the `Appointment` (its participants with their answers to the
current schedule) and each answer as an `AppointmentResponse`. Both are rendered from the plan
as the reader may see it (services/sip/redaction.py): an answer whose custodian the reader may
not see is left out, and its participant's status then reads needs-action, with the withheld
mark saying that something was left out."""

from __future__ import annotations

from typing import Any

from contracts.canonical import CANONICAL_BASE, PARTICIPATION_TYPE_SYSTEM
from contracts.identifiers import HSA_ID_SYSTEM
from services.common.fhir_extensions import recorded_by_extension
from services.common.fhir_time import fhir_instant
from services.sip.domain import Plan
from services.sip.fhir_mapping import (
    appointment_to_fhir,
    marked_withheld,
    organization_reference,
    part_id,
)
from services.sip.parts import Meeting, MeetingAnswer
from services.sip.redaction import withheld_of

# The identifier system of a plan's participants (participant-N), as invitations name them.
PLAN_PARTICIPANT_SYSTEM = f"{CANONICAL_BASE}/sid/plan-participant"
PARTICIPANT_TYPES = {
    "person": "Patient",
    "relative": "RelatedPerson",
    "guardian": "RelatedPerson",
    "representative": "RelatedPerson",
    "professional": "Practitioner",
}


def participant_reference(plan: Plan, participant: str) -> dict[str, Any]:
    """An invited organisation by its HSA-id, a participant of the plan by its id (and its
    kind and name where the reader sees the participant)."""
    if participant not in plan.participants and not participant.startswith("participant-"):
        return organization_reference(participant)
    reference: dict[str, Any] = {
        "identifier": {"system": PLAN_PARTICIPANT_SYSTEM, "value": participant}
    }
    known = plan.participants.get(participant)
    if known is not None:
        reference["type"] = PARTICIPANT_TYPES.get(known.kind, "RelatedPerson")
        reference["display"] = known.name or known.kind
    return reference


def participant_of_reference(reference: Any) -> str | None:
    """The participant an `actor` reference names (its identifier), None if it names none."""
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if not isinstance(identifier, dict):
        return None
    value = identifier.get("value")
    if identifier.get("system") in (HSA_ID_SYSTEM, PLAN_PARTICIPANT_SYSTEM) and value:
        return str(value)
    return None


def participant_status(meeting: Meeting, participant: str) -> str:
    answer = meeting.answer_of(participant)
    return answer.answer if answer is not None else "needs-action"


def appointment_status(meeting: Meeting) -> str:
    """cancelled, fulfilled (held), booked once every participant has accepted, pending before."""
    if meeting.status != "booked":
        return meeting.status
    everyone = all(participant_status(meeting, p) == "accepted" for p in meeting.participants)
    return "booked" if everyone else "pending"


def appointment_of(plan: Plan, meeting_id: str) -> dict[str, Any]:
    """The Appointment view of a meeting: an invitation's own form, a scheduled meeting's as
    before (services/sip/fhir_mapping.py)."""
    meeting = plan.meetings[meeting_id]
    if not meeting.invitation:
        return appointment_to_fhir(plan, meeting_id)
    plan_reference = {"reference": f"CarePlan/{plan.id}", "type": "CarePlan"}
    organizer = {
        "type": [{"coding": [{"system": PARTICIPATION_TYPE_SYSTEM, "code": "CHAIR"}]}],
        "actor": organization_reference(meeting.organizer or ""),
        "required": "required",
        "status": "accepted",
    }
    participants = [
        {
            "actor": participant_reference(plan, participant),
            "required": "required",
            "status": participant_status(meeting, participant),
        }
        for participant in meeting.participants
    ]
    if meeting.organizer in meeting.participants:
        organizer = None  # the organiser invited itself: its own answer stands
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": part_id(plan, meeting_id),
        "meta": {"versionId": str(plan.version), "lastUpdated": fhir_instant(plan.modified_on)},
        "status": appointment_status(meeting),
        "serviceType": [{"text": "SIP-möte"}],
        "start": fhir_instant(meeting.start),
        "end": fhir_instant(meeting.end),
        "participant": ([organizer] if organizer else []) + participants,
        "basedOn": [plan_reference],
        "supportingInformation": [plan_reference],
        "comment": meeting.location or f"Video: {meeting.video}",
    }
    if meeting.agenda:
        appointment["description"] = meeting.agenda
    if meeting.status == "cancelled":
        appointment["cancelationReason"] = {"text": meeting.cancel_reason or "inställt"}
    return marked_withheld(appointment, (w for w in withheld_of(plan) if w.part == meeting_id))


def answers_of(plan: Plan) -> list[str]:
    """The ids of every answer the reader sees (`meeting-2-response-1`, ...)."""
    return [a.id for meeting in plan.meetings.values() for a in meeting.answers]


def answer_in(plan: Plan, answer_id: str) -> tuple[Meeting, MeetingAnswer] | None:
    meeting = plan.meetings.get(answer_id.partition("-response-")[0])
    found = [a for a in meeting.answers if a.id == answer_id] if meeting else []
    return (meeting, found[0]) if meeting and found else None


def appointment_response_of(plan: Plan, answer_id: str) -> dict[str, Any]:
    found = answer_in(plan, answer_id)
    assert found is not None
    meeting, answer = found
    response: dict[str, Any] = {
        "resourceType": "AppointmentResponse",
        "id": part_id(plan, answer.id),
        "meta": {"versionId": str(plan.version), "lastUpdated": fhir_instant(plan.modified_on)},
        "extension": [recorded_by_extension(answer.by)],
        "appointment": {"reference": f"Appointment/{part_id(plan, meeting.id)}"},
        "actor": participant_reference(plan, answer.participant),
        "participantStatus": answer.answer,
    }
    if answer.proposed_start is not None and answer.proposed_end is not None:
        response["start"] = fhir_instant(answer.proposed_start)
        response["end"] = fhir_instant(answer.proposed_end)
    if answer.comment:
        response["comment"] = answer.comment
    return response
