"""Meeting invitations as plan operations, each declared once (services/common/operations):
`POST /fhir/CarePlan/{id}/$invite-to-meeting`, `$answer-meeting`, `$reschedule-meeting` and
`$cancel-meeting`. The common pipeline loads the plan through its disclosure rule (404 for an
organisation not taking part), checks the role matrix (services/sip/permissions.py), honours
`If-Match` (the plan's version, which an Appointment's `versionId` is), and saves the event
with its access-log record in one write. Each answers with what it made or changed: the
Appointment, or the AppointmentResponse, as the caller may see it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from services.common.fhir_api import FhirResponse, resource_response
from services.common.operations.declaration import Operation, OperationCall
from services.common.parameters import Code, DateTime, HsaId, OperationParameters, String
from services.sip.domain import PERSON_PARTIES, Plan
from services.sip.meetings.fhir import answers_of, appointment_of, appointment_response_of
from services.sip.operations import RULE_PARAMETERS as PLAN_RULE_PARAMETERS
from services.sip.operations import plan_operation

RULE_PARAMETERS: dict[str, tuple[str, ...]] = {
    **PLAN_RULE_PARAMETERS,
    "meeting-ends-after-start": ("end", "proposedEnd"),
    "meeting-has-participants": ("participant", "organization"),
    "meeting-organization-once": ("organization",),
    "meeting-participant-once": ("participant",),
    "meeting-organization-in-plan": ("organization",),
    "meeting-participant-in-plan": ("participant",),
    "meeting-invitation": ("meeting",),
    "meeting-cancelled": ("meeting",),
    "meeting-held": ("meeting",),
    "meeting-answer-by-invited": ("organization", "participant"),
    "meeting-answer": ("answer",),
    "meeting-proposal-tentative": ("answer",),
    "meeting-organizer": ("meeting",),
}


def _meeting_operation(
    name: str, documentation: str, parameters: Any, command: Any, returns: str
) -> Operation[Any]:
    return plan_operation(name, documentation, parameters, command, RULE_PARAMETERS, returns)


def _shown(call: OperationCall[Any], render: Any, part: str) -> FhirResponse:
    """The part as the caller may see it once the command has run (the plan's events are
    applied; the pipeline saves them before this answer leaves)."""
    seen = call.state.resources["CarePlan"].access.as_seen_by(call.actor, call.target)
    return resource_response(render(seen, part))


class InviteToMeeting(OperationParameters):
    start: DateTime
    end: DateTime
    location: String | None = None
    video: String | None = None
    agenda: String | None = None
    organization: list[HsaId] = Field(default_factory=list)
    participant: list[String] = Field(default_factory=list)


def invite_to_meeting(call: OperationCall[InviteToMeeting]) -> FhirResponse:
    p = call.parameters
    meeting = {
        "start": p.start,
        "end": p.end,
        "location": p.location,
        "video": p.video,
        "agenda": p.agenda,
        "participants": [*p.organization, *p.participant],
    }
    meeting_id = call.target.invite_to_meeting(meeting=meeting, at=call.at, by=call.by)
    return _shown(call, appointment_of, meeting_id)


class AnswerMeeting(OperationParameters):
    meeting: String
    answer: Code
    organization: HsaId | None = None
    participant: String | None = None
    proposedStart: DateTime | None = None
    proposedEnd: DateTime | None = None
    comment: String | None = None


def answering(plan: Plan, call: OperationCall[Any]) -> str:
    """Whose answer: the one named, else the caller's organisation, or for the person their
    own participant in the meeting (the person's, else a guardian's or representative's)."""
    p = call.parameters
    if p.organization or p.participant:
        return p.organization or p.participant
    if call.actor.role != "patient":
        return call.actor.organization or ""
    invited = plan.meetings[p.meeting].participants if p.meeting in plan.meetings else ()
    own = [
        participant.id
        for participant in plan.participants.values()
        if participant.kind in PERSON_PARTIES and participant.id in invited
    ]
    return own[0] if own else "the person"


def answer_meeting(call: OperationCall[AnswerMeeting]) -> FhirResponse:
    """The answer; a new one (not the same answer repeated) carries its `Location`, by which
    `POST AppointmentResponse` tells a create (201) from a retry (200)."""
    p, plan = call.parameters, call.target
    given = set(answers_of(plan))
    answer_id = plan.answer_meeting(
        meeting_id=p.meeting,
        participant=answering(plan, call),
        answer=p.answer,
        proposed_start=p.proposedStart,
        proposed_end=p.proposedEnd,
        comment=p.comment,
        at=call.at,
        by=call.by,
    )
    answered = _shown(call, appointment_response_of, answer_id)
    if answer_id not in given:
        resource_id = f"{plan.id}-{answer_id}"
        answered.headers["Location"] = f"AppointmentResponse/{resource_id}/_history/{plan.version}"
    return answered


class RescheduleMeeting(OperationParameters):
    meeting: String
    start: DateTime
    end: DateTime
    location: String | None = None
    video: String | None = None


def reschedule_meeting(call: OperationCall[RescheduleMeeting]) -> FhirResponse:
    p = call.parameters
    call.target.reschedule_meeting(
        meeting_id=p.meeting, start=p.start, end=p.end, location=p.location, video=p.video,
        at=call.at, by=call.by,
    )  # fmt: skip
    return _shown(call, appointment_of, p.meeting)


class CancelMeeting(OperationParameters):
    meeting: String
    reason: String | None = None


def cancel_meeting(call: OperationCall[CancelMeeting]) -> FhirResponse:
    p = call.parameters
    call.target.cancel_meeting(meeting_id=p.meeting, reason=p.reason, at=call.at, by=call.by)
    return _shown(call, appointment_of, p.meeting)


ANSWER = _meeting_operation(
    "answer-meeting",
    "An invited participant answers a meeting invitation (meeting: meeting-N, answer: accepted "
    "| declined | tentative, proposedStart and proposedEnd with tentative: another time, "
    "comment). For the caller's own organisation, or organization/participant named: staff "
    "record a participant's answer (participant-N), the person answers as themselves. The "
    "same answer again changes nothing. Answers the AppointmentResponse; "
    "`POST AppointmentResponse` does the same",
    AnswerMeeting,
    answer_meeting,
    "AppointmentResponse",
)
OPERATIONS: list[Operation[Any]] = [
    _meeting_operation(
        "invite-to-meeting",
        "Invites to a SIP meeting organised by the caller's organisation (start, end, location "
        "or video, agenda, organization*: HSA-ids of organisations taking part, participant*: "
        "the plan's participants, participant-N: the person, relatives). Answers the "
        "Appointment",
        InviteToMeeting,
        invite_to_meeting,
        "Appointment",
    ),
    ANSWER,
    _meeting_operation(
        "reschedule-meeting",
        "The organiser moves a meeting (meeting, start, end, location or video): every "
        "participant is asked again (needs-action); the earlier answers stay in the history",
        RescheduleMeeting,
        reschedule_meeting,
        "Appointment",
    ),
    _meeting_operation(
        "cancel-meeting",
        "The organiser cancels a meeting (meeting, reason); it takes no more answers",
        CancelMeeting,
        cancel_meeting,
        "Appointment",
    ),
]
