"""The parts of a plan, as the plan aggregate holds them: small frozen values.

The plan's events carry plain dicts (their stored form never changes); the aggregate turns each
into one of these when it applies the event, and a change replaces a part with
`dataclasses.replace`. Plain frozen dataclasses of primitives, dates and tuples rather than
pydantic models: the event-sourcing library deep-copies aggregates (every version of the
history is a copy), which these do cheaply and without validation, and a misspelt attribute is
an AttributeError at once instead of a silent None from `dict.get`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

# Who did something, as every event records it (`Actor.as_event_data()` in contracts/actor.py).
EventActor = dict[str, Any]


@dataclass(frozen=True, slots=True)
class InvitationAcceptance:
    """An invited organisation's answer that it takes part: from when, through which unit
    (HSA-id) and whom to ask there, as far as it named them."""

    at: datetime
    unit: str | None = None
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class TakingPart:
    """An organisation taking part in the plan: a region, a municipality or another."""

    hsa_id: str
    kind: str
    name: str | None
    invited_at: datetime
    # None until the invited organisation accepts: its invitation is pending. The starting
    # organisation takes part from the start and is accepted from then on.
    acceptance: InvitationAcceptance | None = None


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    kind: str
    name: str | None = None
    role: str | None = None
    # A FHIR Identifier as posted (system, value and whatever else it had): shown as it came.
    identifier: dict[str, Any] | None = None
    organization: str | None = None
    unit: str | None = None
    person_agrees: bool = False
    # Whose entry this is (`custodian_of` the author in services/common/disclosure.py): set
    # on replay from the event's `by`, never stored in the payload.
    custodian: str | None = None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Participant:
        return cls(
            id=data["id"],
            kind=data["kind"],
            name=data.get("name"),
            role=data.get("role"),
            identifier=dict(data["identifier"]) if data.get("identifier") else None,
            organization=data.get("organization"),
            unit=data.get("unit"),
            person_agrees=bool(data.get("person_agrees")),
        )


@dataclass(frozen=True, slots=True)
class Need:
    id: str
    text: str
    wishes: str | None
    recorded_at: datetime
    custodian: str | None = None


@dataclass(frozen=True, slots=True)
class GoalRevision:
    """What a goal said before a revision, and why it changed."""

    text: str
    target_date: date | None
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class GoalAssessment:
    """Whether a goal was reached, as one organisation judged it; the note is its entry."""

    outcome: str
    note: str | None
    assessed_by: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Goal:
    id: str
    text: str
    target_date: date | None
    need_ids: tuple[str, ...]
    set_at: datetime
    status: str = "active"
    outcome: str | None = None
    assessment_note: str | None = None
    revisions: tuple[GoalRevision, ...] = ()
    # Whoever last set or revised the goal's text; the assessment note is the assessor's.
    custodian: str | None = None
    assessed_by: str | None = None
    # A revision proposed on an active plan: the text above stays the approved one until the
    # person approves (GoalRevision's text and target date are then the proposed ones).
    proposal: GoalRevision | None = None
    # An assessment made on an active plan: the outcome above stays until the person approves.
    proposed_assessment: GoalAssessment | None = None


@dataclass(frozen=True, slots=True)
class Intervention:
    id: str
    text: str
    kind: str
    responsible_principal: str
    status: str
    need_ids: tuple[str, ...] = ()
    goal_ids: tuple[str, ...] = ()
    performer_organization: str | None = None
    performer_unit: str | None = None
    performer_participant: str | None = None
    responsible_organization: str | None = None
    responsible_unit: str | None = None
    start: date | None = None
    end: date | None = None
    status_reason: str | None = None
    custodian: str | None = None
    # A status change proposed on an active plan: `status` stays the approved one until then.
    proposed_status: str | None = None
    proposed_status_reason: str | None = None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Intervention:
        return cls(
            id=data["id"],
            text=data["text"],
            kind=data["kind"],
            responsible_principal=data["responsible_principal"],
            status=data["status"],
            need_ids=tuple(data.get("need_ids") or ()),
            goal_ids=tuple(data.get("goal_ids") or ()),
            performer_organization=data.get("performer_organization"),
            performer_unit=data.get("performer_unit"),
            performer_participant=data.get("performer_participant"),
            responsible_organization=data.get("responsible_organization"),
            responsible_unit=data.get("responsible_unit"),
            start=data.get("start"),
            end=data.get("end"),
        )


@dataclass(frozen=True, slots=True)
class OverallResponsibility:
    organization: str
    principal: str
    since: datetime
    reason: str | None
    previous: str | None  # the organisation that held it before, if any


@dataclass(frozen=True, slots=True)
class MeetingAnswer:
    """One invited participant's answer to a meeting invitation (an AppointmentResponse):
    accepted, declined or tentative, perhaps proposing another time, with a comment."""

    id: str  # response-N, numbered within the meeting
    participant: str  # the invited organisation's HSA-id, or a participant id (participant-N)
    answer: str
    at: datetime
    by: EventActor
    schedule: int  # the meeting's schedule it answers (0, then one more each reschedule)
    proposed_start: datetime | None = None
    proposed_end: datetime | None = None
    comment: str | None = None
    custodian: str | None = None


@dataclass(frozen=True, slots=True)
class Meeting:
    id: str
    start: datetime
    end: datetime
    status: str
    location: str | None = None
    video: str | None = None
    invitees: tuple[str, ...] = ()
    attendees: tuple[str, ...] = ()
    notes: str | None = None
    custodian: str | None = None  # who scheduled it
    notes_custodian: str | None = None  # who recorded the held meeting
    # A meeting invitation (services/sip/meetings): the organising organisation, the invited
    # participants (HSA-ids of organisations taking part, participant ids), the agenda, every
    # answer in order, the current schedule (a reschedule asks everyone again) and why it was
    # cancelled, if it was.
    organizer: str | None = None
    participants: tuple[str, ...] = ()
    agenda: str | None = None
    answers: tuple[MeetingAnswer, ...] = ()
    schedule: int = 0
    cancel_reason: str | None = None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Meeting:
        return cls(
            id=data["id"],
            start=data["start"],
            end=data["end"],
            status=data["status"],
            location=data.get("location"),
            video=data.get("video"),
            invitees=tuple(data.get("invitees") or ()),
            organizer=data.get("organizer"),
            participants=tuple(data.get("participants") or ()),
            agenda=data.get("agenda"),
        )

    @property
    def invitation(self) -> bool:
        """Sent as an invitation its participants answer (not only scheduled)."""
        return bool(self.participants)

    def answer_of(self, participant: str) -> MeetingAnswer | None:
        """The participant's answer to the current schedule, if it has given one."""
        answers = [
            a for a in self.answers if a.participant == participant and a.schedule == self.schedule
        ]
        return answers[-1] if answers else None


@dataclass(frozen=True, slots=True)
class FollowUp:
    reviewed: str
    changes: str | None
    at: datetime
    by: EventActor
    was_due: date | None
    custodian: str | None = None


@dataclass(frozen=True, slots=True)
class CostShare:
    """One principal's share of a cost: in percent or in kronor."""

    organization: str
    percent: float | None = None
    amount_sek: float | None = None
    principal: str | None = None  # recorded when the default split chose the shares

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> CostShare:
        return cls(
            organization=data["organization"],
            percent=data.get("percent"),
            amount_sek=data.get("amount_sek"),
            principal=data.get("principal"),
        )


@dataclass(frozen=True, slots=True)
class CostAllocation:
    id: str
    intervention_id: str
    shares: tuple[CostShare, ...]
    period_start: date
    period_end: date | None
    agreed_by: tuple[str, ...] = ()
    in_force: bool = False
    custodian: str | None = None
    # The default 1/3–2/3 split: the principals that recorded that the split is unclear
    # (empty for shares the principals gave themselves, and for allocations stored before).
    split_unclear_by: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> CostAllocation:
        return cls(
            id=data["id"],
            intervention_id=data["intervention_id"],
            shares=tuple(CostShare.from_payload(share) for share in data["shares"]),
            period_start=data["period_start"],
            period_end=data.get("period_end"),
            agreed_by=tuple(data.get("agreed_by") or ()),
            in_force=bool(data.get("in_force")),
            split_unclear_by=tuple(data.get("split_unclear_by") or ()),
        )

    @property
    def parties(self) -> set[str]:
        return {share.organization for share in self.shares}


@dataclass(frozen=True, slots=True)
class DeviationAnswer:
    text: str
    organization: str
    at: datetime
    custodian: str | None = None


@dataclass(frozen=True, slots=True)
class Deviation:
    """A responsibility agreed in the plan that was not carried out (avvikelse)."""

    id: str
    organization: str
    intervention_id: str | None
    text: str
    reported_at: datetime
    answer: DeviationAnswer | None = None
    custodian: str | None = None
    against: str | None = None  # named where no intervention says it (a missed deadline)
    source: dict[str, str] | None = None  # what raised it, if not a participant


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A change to an active plan waiting for the person's approval: until then the entry it
    touches is shown as proposed."""

    change: str
    at: datetime
    by: EventActor
    entry: str | None = None  # the part it touches ("need-3", "goal-1", ...), if one
    new: bool = False  # the entry itself is proposed (not only a change to an approved one)


@dataclass(frozen=True, slots=True)
class Approval:
    approved_by: str
    meeting_id: str | None
    at: datetime
    changes: tuple[PendingChange, ...]
    by: EventActor


@dataclass(frozen=True, slots=True)
class Rejection:
    """The person's no to the changes that waited for their approval: every one of them is
    dropped. `dropped` names the entries that were only proposals (and the cost allocations of
    a dropped intervention), whose ids are never given again."""

    rejected_by: str
    meeting_id: str | None
    reason: str | None
    at: datetime
    changes: tuple[PendingChange, ...]
    by: EventActor
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProposedFollowUpDate:
    """A follow-up date staff set on an active plan. Unlike the other proposals it is in force
    at once (the plan is followed up when it says), yet it is a change the person may reject:
    `replaced` is the date it replaced, which a rejection gives back."""

    replaced: date | None


@dataclass(frozen=True, slots=True)
class Closure:
    reason: str
    note: str | None
    replaced_by: str | None
    at: datetime
    by: EventActor
