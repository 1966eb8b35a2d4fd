"""The plan's commands as FHIR operations: `POST /fhir/CarePlan/{id}/$<name>` with a
`Parameters` body. Each reads its parameters and runs one command on the plan aggregate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.actor import Actor
from contracts.identifiers import PERSON_ID_SYSTEMS, InvalidIdentifier, parse_person_identifier
from services.common.fhir_api import FhirError
from services.common.parameters import OperationParameters
from services.sip.domain import Plan

Command = Callable[[Plan, OperationParameters, Actor, datetime], Any]


@dataclass(frozen=True)
class Operation:
    name: str
    documentation: str
    command: Command
    patient_may: bool = False  # the person (or their representative) may call it


def _by(actor: Actor) -> dict[str, Any]:
    return actor.as_event_data()


def invite_organization(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.invite_organization(
        hsa_id=p.identifier("organization"),
        kind=p.text("kind"),
        name=p.text("name", False),
        at=at,
        by=_by(actor),
    )


def add_participant(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    identifier = p.identifier_object("identifier")
    if identifier and identifier.get("system") in PERSON_ID_SYSTEMS:
        try:
            parse_person_identifier(identifier.get("system"), identifier.get("value"))
        except InvalidIdentifier as error:
            raise FhirError(422, "invalid", f"identifier: {error}") from None
    return plan.add_participant(
        participant={
            "kind": p.text("kind"),
            "name": p.text("name", False),
            "role": p.text("role", False),
            "identifier": identifier,
            "organization": p.identifier("organization", False),
            "unit": p.identifier("unit", False),
            "person_agrees": p.boolean("personAgrees"),
        },
        at=at,
        by=_by(actor),
    )


def record_need(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.record_need(
        text=p.text("text"), wishes=p.text("wishes", False), at=at, by=_by(actor)
    )


def set_goal(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.set_goal(
        text=p.text("text"),
        target_date=p.date("targetDate", False),
        need_ids=p.texts("need"),
        at=at,
        by=_by(actor),
    )


def revise_goal(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.revise_goal(
        goal_id=p.text("goal"),
        text=p.text("text"),
        target_date=p.date("targetDate", False),
        reason=p.text("reason"),
        at=at,
        by=_by(actor),
    )


def assess_goal(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.assess_goal(
        goal_id=p.text("goal"),
        outcome=p.text("outcome"),
        note=p.text("note", False),
        at=at,
        by=_by(actor),
    )


def assign_intervention(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.assign_intervention(
        intervention={
            "text": p.text("text"),
            "kind": p.text("kind"),
            "need_ids": p.texts("need"),
            "goal_ids": p.texts("goal"),
            "performer_organization": p.identifier("performerOrganization", False),
            "performer_unit": p.identifier("performerUnit", False),
            "performer_participant": p.text("performerParticipant", False),
            "responsible_principal": p.text("responsiblePrincipal"),
            "responsible_organization": p.identifier("responsibleOrganization", False),
            "responsible_unit": p.identifier("responsibleUnit", False),
            "start": p.date("start", False),
            "end": p.date("end", False),
        },
        at=at,
        by=_by(actor),
    )


def set_intervention_status(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.change_intervention_status(
        intervention_id=p.text("intervention"),
        status=p.text("status"),
        reason=p.text("reason", False),
        at=at,
        by=_by(actor),
    )


def assign_overall_responsibility(
    plan: Plan, p: OperationParameters, actor: Actor, at: datetime
) -> Any:
    return plan.assign_overall_responsibility(
        organization=p.identifier("organization"),
        reason=p.text("reason", False),
        at=at,
        by=_by(actor),
    )


def schedule_meeting(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    start, end = p.instant("start"), p.instant("end")
    assert start is not None and end is not None
    if end <= start:
        raise FhirError(400, "invalid", "a meeting ends after it starts")
    return plan.schedule_meeting(
        meeting={
            "start": start,
            "end": end,
            "location": p.text("location", False),
            "video": p.text("video", False),
            "invitees": p.texts("invitee"),
        },
        at=at,
        by=_by(actor),
    )


def record_meeting(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.record_meeting(
        meeting_id=p.text("meeting"),
        attendees=p.texts("attendee"),
        notes=p.text("notes", False),
        approved_changes=p.boolean("approvedChanges"),
        at=at,
        by=_by(actor),
    )


def set_follow_up(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.set_follow_up(follow_up_date=p.date("date"), at=at, by=_by(actor))


def record_follow_up(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.record_follow_up(
        reviewed=p.text("reviewed"),
        changes=p.text("changes", False),
        next_date=p.date("nextDate", False),
        at=at,
        by=_by(actor),
    )


def allocate_cost(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    shares = [
        {
            "organization": share.identifier("organization"),
            "percent": share.number("percent", False),
            "amount_sek": share.number("amountSek", False),
        }
        for share in p.parts("share")
    ]
    return plan.propose_cost_allocation(
        intervention_id=p.text("intervention"),
        shares=shares,
        period_start=p.date("periodStart"),
        period_end=p.date("periodEnd", False),
        at=at,
        by=_by(actor),
    )


def agree_cost_allocation(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.agree_cost_allocation(
        allocation_id=p.text("allocation"),
        organization=actor.organization or "",
        at=at,
        by=_by(actor),
    )


def approve_changes(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    approved_by = p.text("approvedBy", False) or ("person" if actor.role == "patient" else None)
    if approved_by is None:
        raise FhirError(400, "required", "$approve-changes needs 'approvedBy'")
    if actor.role == "patient" and approved_by == "meeting":
        raise FhirError(403, "forbidden", "a meeting's approval is recorded by staff")
    return plan.approve_changes(
        approved_by=approved_by, meeting_id=p.text("meeting", False), at=at, by=_by(actor)
    )


def close(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.close(
        reason=p.text("reason"),
        note=p.text("note", False),
        replaced_by=p.text("replacedBy", False),
        at=at,
        by=_by(actor),
    )


def report_deviation(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.report_deviation(
        organization=actor.organization or "",
        intervention_id=p.text("intervention", False),
        text=p.text("text"),
        at=at,
        by=_by(actor),
    )


def answer_deviation(plan: Plan, p: OperationParameters, actor: Actor, at: datetime) -> Any:
    return plan.answer_deviation(
        deviation_id=p.text("deviation"),
        organization=actor.organization or "",
        answer=p.text("answer"),
        at=at,
        by=_by(actor),
    )


OPERATIONS = [
    Operation(
        "invite-organization",
        "Invites a region, municipality or other organisation (organization: HSA-id, kind, name)",
        invite_organization,
    ),
    Operation(
        "add-participant",
        "Adds the person, a relative (personAgrees), a guardian, a "
        "representative or a professional (organization, unit, role)",
        add_participant,
    ),
    Operation(
        "record-need", "Records a need in the person's own words (text, wishes)", record_need
    ),
    Operation("set-goal", "Sets the person's goal (text, targetDate, need*)", set_goal),
    Operation("revise-goal", "Revises a goal (goal, text, targetDate, reason)", revise_goal),
    Operation("assess-goal", "Marks a goal achieved or not (goal, outcome, note)", assess_goal),
    Operation(
        "assign-intervention",
        "Assigns an intervention (text, kind, need*, goal*, "
        "performerOrganization/performerUnit or performerParticipant, "
        "responsiblePrincipal, responsibleOrganization, responsibleUnit, start, end)",
        assign_intervention,
    ),
    Operation(
        "set-intervention-status",
        "planned | in-progress | done | stopped (reason)",
        set_intervention_status,
    ),
    Operation(
        "assign-overall-responsibility",
        "Gives a region or municipality the overall "
        "responsibility, or transfers it (organization, reason)",
        assign_overall_responsibility,
    ),
    Operation(
        "schedule-meeting",
        "Schedules a SIP meeting (start, end, location or video, invitee*)",
        schedule_meeting,
    ),
    Operation(
        "record-meeting",
        "Records that a meeting was held (meeting, attendee*, notes, approvedChanges)",
        record_meeting,
    ),
    Operation("set-follow-up", "Sets the follow-up date (date)", set_follow_up),
    Operation(
        "record-follow-up", "Records a follow-up (reviewed, changes, nextDate)", record_follow_up
    ),
    Operation(
        "allocate-cost",
        "Proposes a cost allocation for an intervention (intervention, "
        "share* with organization and percent or amountSek, periodStart, periodEnd); "
        "no shares: 1/3 region, 2/3 municipality",
        allocate_cost,
    ),
    Operation(
        "agree-cost-allocation",
        "The caller's principal agrees (allocation); in force when both have agreed",
        agree_cost_allocation,
    ),
    Operation(
        "approve-changes",
        "The person (or guardian, representative, or a meeting) "
        "approves the pending changes (approvedBy, meeting)",
        approve_changes,
        patient_may=True,
    ),
    Operation(
        "close",
        "Closes the plan (reason: goals-reached | person-withdrew | moved | died "
        "| replaced, note, replacedBy); the person may do it at any time",
        close,
        patient_may=True,
    ),
    Operation(
        "report-deviation",
        "Reports that an agreed responsibility was not carried out (intervention, text)",
        report_deviation,
    ),
    Operation("answer-deviation", "Answers a deviation (deviation, answer)", answer_deviation),
]
