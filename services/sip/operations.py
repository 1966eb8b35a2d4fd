"""The plan's operations, each declared once: `POST /fhir/CarePlan/{id}/$<name>` with a
`Parameters` body, read into the operation's parameter model, running one command on the
plan. The common pipeline (services/common/operations) loads, checks, writes and answers."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from contracts.identifiers import PERSON_ID_SYSTEMS, InvalidIdentifier, parse_person_identifier
from services.common.fhir_api import FhirError
from services.common.operations.declaration import Operation, OperationCall
from services.common.parameters import (
    Boolean,
    Code,
    Date,
    DateTime,
    Decimal,
    HsaId,
    Identifier,
    OperationParameters,
    String,
)
from services.sip.permissions import guard

# The parameter each of the plan's rules is about (the first one an operation takes), so a
# refusal names the element to change along with the rule (docs/fhir-extensions.md, rule).
RULE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "organization-invited-once": ("organization",),
    "organization-kind": ("kind",),
    "relative-needs-person-agreement": ("personAgrees",),
    "participant-organization-takes-part": ("organization",),
    "participant-kind": ("kind",),
    "known-need": ("need",),
    "known-goal": ("goal",),
    "known-intervention": ("intervention",),
    "known-meeting": ("meeting",),
    "known-deviation": ("deviation",),
    "responsible-principal-matches-organization": ("responsibleOrganization",),
    "intervention-responsible-principal": ("responsiblePrincipal",),
    "intervention-has-performer": ("performerOrganization", "performerParticipant"),
    "intervention-organization-takes-part": ("performerOrganization", "responsibleOrganization"),
    "intervention-status": ("status",),
    "stopped-intervention-reason": ("reason",),
    "overall-responsibility-transfer-reason": ("reason",),
    "overall-responsibility-principal": ("organization",),
    "overall-responsibility-changes": ("organization",),
    "meeting-place": ("location", "video"),
    "meeting-approval-needs-the-person": ("attendee", "meeting"),
    "meeting-rejection-needs-the-person": ("meeting",),
    "cost-share-amount": ("share",),
    "cost-shares-whole": ("share",),
    "cost-shares-between-principals": ("share",),
    "default-split-only-when-unclear": ("splitUnclear",),
    "cost-agreed-once": ("allocation",),
    "deviation-against-another": ("intervention",),
    "deviation-answered-once": ("deviation",),
    "replaced-by-plan": ("replacedBy",),
    "close-reason": ("reason",),
    "approver": ("approvedBy",),
    "rejecter": ("rejectedBy",),
}


def plan_operation(
    name: str,
    documentation: str,
    parameters: Any,
    command: Any,
    rule_parameters: dict[str, tuple[str, ...]] | None = None,
    returns: str = "",
) -> Operation[Any]:
    """A state-changing operation; who may call it is its row of the role matrix."""
    allowed = guard(name)
    return Operation(
        name,
        "CarePlan",
        documentation,
        parameters,
        command,
        patient_may=allowed.patient_may,
        may_call=allowed.may_call,
        may_change=allowed.may_change,
        rule_parameters=RULE_PARAMETERS if rule_parameters is None else rule_parameters,
        returns=returns,
    )


class InviteOrganization(OperationParameters):
    organization: HsaId
    kind: Code
    name: String | None = None


def invite_organization(call: OperationCall[InviteOrganization]) -> Any:
    p, plan = call.parameters, call.target
    return plan.invite_organization(
        hsa_id=p.organization, kind=p.kind, name=p.name, at=call.at, by=call.by
    )


class AcceptInvitation(OperationParameters):
    unit: HsaId | None = None
    contact: String | None = None


def accept_invitation(call: OperationCall[AcceptInvitation]) -> Any:
    p, plan = call.parameters, call.target
    return plan.accept_invitation(
        organization=call.actor.organization or "",
        unit=p.unit,
        contact=p.contact,
        at=call.at,
        by=call.by,
    )


class AddParticipant(OperationParameters):
    kind: Code
    name: String | None = None
    role: String | None = None
    identifier: Identifier | None = None
    organization: HsaId | None = None
    unit: HsaId | None = None
    personAgrees: Boolean = False


def add_participant(call: OperationCall[AddParticipant]) -> Any:
    p, plan = call.parameters, call.target
    if p.identifier and p.identifier.get("system") in PERSON_ID_SYSTEMS:
        try:
            parse_person_identifier(p.identifier.get("system"), p.identifier.get("value"))
        except InvalidIdentifier as error:
            raise FhirError(422, "invalid", f"identifier: {error}") from None
    participant = {
        "kind": p.kind,
        "name": p.name,
        "role": p.role,
        "identifier": p.identifier,
        "organization": p.organization,
        "unit": p.unit,
        "person_agrees": p.personAgrees,
    }
    return plan.add_participant(participant=participant, at=call.at, by=call.by)


class RecordNeed(OperationParameters):
    text: String
    wishes: String | None = None


def record_need(call: OperationCall[RecordNeed]) -> Any:
    p, plan = call.parameters, call.target
    return plan.record_need(text=p.text, wishes=p.wishes, at=call.at, by=call.by)


class SetGoal(OperationParameters):
    text: String
    targetDate: Date | None = None
    need: list[String] = Field(default_factory=list)


def set_goal(call: OperationCall[SetGoal]) -> Any:
    p, plan = call.parameters, call.target
    return plan.set_goal(
        text=p.text, target_date=p.targetDate, need_ids=p.need, at=call.at, by=call.by
    )


class ReviseGoal(OperationParameters):
    goal: String
    text: String
    targetDate: Date | None = None
    reason: String


def revise_goal(call: OperationCall[ReviseGoal]) -> Any:
    p, plan = call.parameters, call.target
    return plan.revise_goal(
        goal_id=p.goal,
        text=p.text,
        target_date=p.targetDate,
        reason=p.reason,
        at=call.at,
        by=call.by,
    )


class AssessGoal(OperationParameters):
    goal: String
    outcome: Code
    note: String | None = None


def assess_goal(call: OperationCall[AssessGoal]) -> Any:
    p, plan = call.parameters, call.target
    return plan.assess_goal(goal_id=p.goal, outcome=p.outcome, note=p.note, at=call.at, by=call.by)


class AssignIntervention(OperationParameters):
    text: String
    kind: Code
    need: list[String] = Field(default_factory=list)
    goal: list[String] = Field(default_factory=list)
    performerOrganization: HsaId | None = None
    performerUnit: HsaId | None = None
    performerParticipant: String | None = None
    responsiblePrincipal: Code
    responsibleOrganization: HsaId | None = None
    responsibleUnit: HsaId | None = None
    start: Date | None = None
    end: Date | None = None


def assign_intervention(call: OperationCall[AssignIntervention]) -> Any:
    p, plan = call.parameters, call.target
    intervention = {
        "text": p.text,
        "kind": p.kind,
        "need_ids": p.need,
        "goal_ids": p.goal,
        "performer_organization": p.performerOrganization,
        "performer_unit": p.performerUnit,
        "performer_participant": p.performerParticipant,
        "responsible_principal": p.responsiblePrincipal,
        "responsible_organization": p.responsibleOrganization,
        "responsible_unit": p.responsibleUnit,
        "start": p.start,
        "end": p.end,
    }
    return plan.assign_intervention(intervention=intervention, at=call.at, by=call.by)


class SetInterventionStatus(OperationParameters):
    intervention: String
    status: Code
    reason: String | None = None


def set_intervention_status(call: OperationCall[SetInterventionStatus]) -> Any:
    p, plan = call.parameters, call.target
    return plan.change_intervention_status(
        intervention_id=p.intervention, status=p.status, reason=p.reason, at=call.at, by=call.by
    )


class AssignOverallResponsibility(OperationParameters):
    organization: HsaId
    reason: String | None = None


def assign_overall_responsibility(call: OperationCall[AssignOverallResponsibility]) -> Any:
    p, plan = call.parameters, call.target
    return plan.assign_overall_responsibility(
        organization=p.organization, reason=p.reason, at=call.at, by=call.by
    )


class ScheduleMeeting(OperationParameters):
    start: DateTime
    end: DateTime
    location: String | None = None
    video: String | None = None
    invitee: list[String] = Field(default_factory=list)


def schedule_meeting(call: OperationCall[ScheduleMeeting]) -> Any:
    p, plan = call.parameters, call.target
    if p.end <= p.start:
        raise FhirError(400, "invalid", "a meeting ends after it starts")
    meeting = {
        "start": p.start,
        "end": p.end,
        "location": p.location,
        "video": p.video,
        "invitees": p.invitee,
    }
    return plan.schedule_meeting(meeting=meeting, at=call.at, by=call.by)


class RecordMeeting(OperationParameters):
    meeting: String
    attendee: list[String] = Field(default_factory=list)
    notes: String | None = None
    approvedChanges: Boolean = False


def record_meeting(call: OperationCall[RecordMeeting]) -> Any:
    p, plan = call.parameters, call.target
    return plan.record_meeting(
        meeting_id=p.meeting,
        attendees=p.attendee,
        notes=p.notes,
        approved_changes=p.approvedChanges,
        at=call.at,
        by=call.by,
    )


class SetFollowUp(OperationParameters):
    date: Date


def set_follow_up(call: OperationCall[SetFollowUp]) -> Any:
    return call.target.set_follow_up(follow_up_date=call.parameters.date, at=call.at, by=call.by)


class RecordFollowUp(OperationParameters):
    reviewed: String
    changes: String | None = None
    nextDate: Date | None = None


def record_follow_up(call: OperationCall[RecordFollowUp]) -> Any:
    p, plan = call.parameters, call.target
    return plan.record_follow_up(
        reviewed=p.reviewed, changes=p.changes, next_date=p.nextDate, at=call.at, by=call.by
    )


class CostShare(OperationParameters):
    organization: HsaId
    percent: Decimal | None = None
    amountSek: Decimal | None = None


class AllocateCost(OperationParameters):
    intervention: String
    share: list[CostShare] = Field(default_factory=list)
    periodStart: Date
    periodEnd: Date | None = None
    splitUnclear: Boolean = False  # no shares: the proposer records that the split is unclear


def allocate_cost(call: OperationCall[AllocateCost]) -> Any:
    p, plan = call.parameters, call.target
    if not p.share and not p.splitUnclear:
        raise FhirError(
            422,
            "required",
            "give the shares; the default 1/3–2/3 split applies only when both principals "
            "record that the split is unclear (splitUnclear = true)",
            rule="default-split-only-when-unclear",
            expression="share",
        )
    if p.share and p.splitUnclear:
        raise FhirError(
            422,
            "invalid",
            "shares are given, so the split is not unclear",
            rule="default-split-only-when-unclear",
            expression="splitUnclear",
        )
    shares = [
        {"organization": s.organization, "percent": s.percent, "amount_sek": s.amountSek}
        for s in p.share
    ]
    return plan.propose_cost_allocation(
        intervention_id=p.intervention,
        shares=shares,
        period_start=p.periodStart,
        period_end=p.periodEnd,
        at=call.at,
        by=call.by,
        split_unclear=p.splitUnclear,
    )


class AgreeCostAllocation(OperationParameters):
    allocation: String
    splitUnclear: Boolean = False  # agreeing to a default split: the split is unclear to us too


def agree_cost_allocation(call: OperationCall[AgreeCostAllocation]) -> Any:
    allocation = call.target.cost_allocations.get(call.parameters.allocation)
    if allocation is not None and allocation.split_unclear_by and not call.parameters.splitUnclear:
        raise FhirError(
            422,
            "required",
            "a default 1/3–2/3 split is agreed only by recording that the split is unclear "
            "(splitUnclear = true)",
            rule="default-split-only-when-unclear",
            expression="splitUnclear",
        )
    return call.target.agree_cost_allocation(
        allocation_id=call.parameters.allocation,
        organization=call.actor.organization or "",
        at=call.at,
        by=call.by,
    )


class ApproveChanges(OperationParameters):
    approvedBy: Code | None = None  # the person's own call: "person"
    meeting: String | None = None


def approve_changes(call: OperationCall[ApproveChanges]) -> Any:
    p, actor = call.parameters, call.actor
    approved_by = p.approvedBy or ("person" if actor.role == "patient" else None)
    if approved_by is None:
        raise FhirError(400, "required", "$approve-changes needs 'approvedBy'")
    return call.target.approve_changes(
        approved_by=approved_by, meeting_id=p.meeting, at=call.at, by=call.by
    )


class RejectChanges(OperationParameters):
    rejectedBy: Code | None = None  # the person's own call: "person"
    meeting: String | None = None
    reason: String | None = None


def reject_changes(call: OperationCall[RejectChanges]) -> Any:
    p, actor = call.parameters, call.actor
    rejected_by = p.rejectedBy or ("person" if actor.role == "patient" else None)
    if rejected_by is None:
        raise FhirError(400, "required", "$reject-changes needs 'rejectedBy'")
    return call.target.reject_changes(
        rejected_by=rejected_by, meeting_id=p.meeting, reason=p.reason, at=call.at, by=call.by
    )


class Close(OperationParameters):
    reason: Code
    note: String | None = None
    replacedBy: String | None = None


def close(call: OperationCall[Close]) -> Any:
    p, plan = call.parameters, call.target
    return plan.close(
        reason=p.reason, note=p.note, replaced_by=p.replacedBy, at=call.at, by=call.by
    )


class ReportDeviation(OperationParameters):
    intervention: String | None = None
    text: String


def report_deviation(call: OperationCall[ReportDeviation]) -> Any:
    p, plan = call.parameters, call.target
    return plan.report_deviation(
        organization=call.actor.organization or "",
        intervention_id=p.intervention,
        text=p.text,
        at=call.at,
        by=call.by,
    )


class AnswerDeviation(OperationParameters):
    deviation: String
    answer: String


def answer_deviation(call: OperationCall[AnswerDeviation]) -> Any:
    p, plan = call.parameters, call.target
    return plan.answer_deviation(
        deviation_id=p.deviation,
        organization=call.actor.organization or "",
        answer=p.answer,
        at=call.at,
        by=call.by,
    )


OPERATIONS: list[Operation[Any]] = [
    plan_operation(
        "invite-organization",
        "Invites a region, municipality or other organisation (organization: HSA-id, kind, name)",
        InviteOrganization,
        invite_organization,
    ),
    plan_operation(
        "accept-invitation",
        "The caller's organisation accepts its invitation to the plan, once (unit: HSA-id of "
        "the unit taking part, contact: whom to ask there)",
        AcceptInvitation,
        accept_invitation,
    ),
    plan_operation(
        "add-participant",
        "Adds the person, a relative (personAgrees), a guardian, a "
        "representative or a professional (organization, unit, role)",
        AddParticipant,
        add_participant,
    ),
    plan_operation(
        "record-need",
        "Records a need in the person's own words (text, wishes)",
        RecordNeed,
        record_need,
    ),
    plan_operation(
        "set-goal", "Sets the person's goal (text, targetDate, need*)", SetGoal, set_goal
    ),
    plan_operation(
        "revise-goal", "Revises a goal (goal, text, targetDate, reason)", ReviseGoal, revise_goal
    ),
    plan_operation(
        "assess-goal", "Marks a goal achieved or not (goal, outcome, note)", AssessGoal, assess_goal
    ),
    plan_operation(
        "assign-intervention",
        "Assigns an intervention (text, kind, need*, goal*, "
        "performerOrganization/performerUnit or performerParticipant, "
        "responsiblePrincipal, responsibleOrganization, responsibleUnit, start, end)",
        AssignIntervention,
        assign_intervention,
    ),
    plan_operation(
        "set-intervention-status",
        "planned | in-progress | done | stopped (reason)",
        SetInterventionStatus,
        set_intervention_status,
    ),
    plan_operation(
        "assign-overall-responsibility",
        "Gives a region or municipality the overall "
        "responsibility, or transfers it (organization, reason)",
        AssignOverallResponsibility,
        assign_overall_responsibility,
    ),
    plan_operation(
        "schedule-meeting",
        "Schedules a SIP meeting (start, end, location or video, invitee*)",
        ScheduleMeeting,
        schedule_meeting,
    ),
    plan_operation(
        "record-meeting",
        "Records that a meeting was held (meeting, attendee*, notes, approvedChanges). "
        "Attendees are named by participant id (participant-N) or name; approvedChanges "
        "only if the person's, a guardian's or a representative's participant id is among them",
        RecordMeeting,
        record_meeting,
    ),
    plan_operation("set-follow-up", "Sets the follow-up date (date)", SetFollowUp, set_follow_up),
    plan_operation(
        "record-follow-up",
        "Records a follow-up (reviewed, changes, nextDate)",
        RecordFollowUp,
        record_follow_up,
    ),
    plan_operation(
        "allocate-cost",
        "Proposes a cost allocation for an intervention (intervention, "
        "share* with organization and percent or amountSek, periodStart, periodEnd); "
        "no shares only with splitUnclear = true: 1/3 region, 2/3 municipality, in force "
        "when the other principal agrees with splitUnclear = true",
        AllocateCost,
        allocate_cost,
    ),
    plan_operation(
        "agree-cost-allocation",
        "The caller's principal agrees (allocation; splitUnclear = true to agree to a default "
        "split); in force when both have agreed",
        AgreeCostAllocation,
        agree_cost_allocation,
    ),
    plan_operation(
        "approve-changes",
        "The person (or guardian, representative, with the person's token) approves the "
        "pending changes; staff record only a meeting's approval (approvedBy = meeting, "
        "meeting: held, with the person among its attendees)",
        ApproveChanges,
        approve_changes,
    ),
    plan_operation(
        "reject-changes",
        "The person (or guardian, representative, with the person's token) rejects the "
        "pending changes, all of them: what was only proposed is dropped and the plan stays as "
        "approved (reason); staff record only a meeting's rejection (rejectedBy = meeting, "
        "meeting: held, with the person among its attendees)",
        RejectChanges,
        reject_changes,
    ),
    plan_operation(
        "close",
        "Closes the plan (reason: goals-reached | person-withdrew | moved | died "
        "| replaced, note, replacedBy); the person may do it at any time",
        Close,
        close,
    ),
    plan_operation(
        "report-deviation",
        "Reports that an agreed responsibility was not carried out (intervention, text)",
        ReportDeviation,
        report_deviation,
    ),
    plan_operation(
        "answer-deviation",
        "Answers a deviation (deviation, answer)",
        AnswerDeviation,
        answer_deviation,
    ),
]
"""The plan's own commands; `$activate` and `$as-of` (services/sip/consent_operations.py)
ask the consent service as well."""
