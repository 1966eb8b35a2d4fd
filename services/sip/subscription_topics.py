"""The SIP service's subscription topics, and what each plan event means for them.

Who hears of an event is decided twice: here, whom the topic is about (the invited
organisation, the one a deviation is against); then, at delivery, whether the subscriber may
read it at all (the plan's disclosure rule, services/sip/disclosure.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.subscription_topics import (
    CONSENT_WITHDRAWN,
    DEVIATION_REPORTED,
    FOLLOW_UP_OVERDUE,
    ORGANIZATION_INVITED,
    PLAN_CHANGED,
    PLAN_PARTS,
)
from services.common.fhir_time import swedish_today
from services.common.subscriptions.topics import TIMED, Occurrence, Topic, transcoded_text
from services.sip.domain import Plan
from services.sip.projections import PlanIndex

TOPICS = (
    Topic(PLAN_CHANGED, "A plan my organisation takes part in was created or changed",
          "Every change of a plan the subscriber's organisation takes part in, with the part "
          "it changed", "CarePlan", parts=PLAN_PARTS),
    Topic(ORGANIZATION_INVITED, "My organisation was invited to a plan",
          "The subscriber's organisation was invited to take part in a plan", "CarePlan"),
    Topic(DEVIATION_REPORTED, "A deviation was reported against my organisation",
          "A deviation was reported against the subscriber's organisation (the one responsible "
          "for the intervention; without one, every other organisation taking part)", "CarePlan"),
    Topic(FOLLOW_UP_OVERDUE, "A follow-up is overdue",
          "A plan's follow-up date passed without the follow-up recorded; told once per "
          "follow-up date", "CarePlan", source=TIMED),
    Topic(CONSENT_WITHDRAWN, "A consent a plan relied on was withdrawn",
          "A consent the plan relied on was withdrawn or ended; told to the plan's "
          "organisations without the consent's content", "CarePlan"),
)  # fmt: skip

PART_OF_EVENT = {
    "Started": "status", "Activated": "status", "Closed": "status",
    "OrganizationInvited": "participant", "InvitationAccepted": "participant",
    "ParticipantAdded": "participant",
    "NeedRecorded": "need",
    "GoalSet": "goal", "GoalRevised": "goal", "GoalAssessed": "goal",
    "InterventionAssigned": "intervention", "InterventionStatusChanged": "intervention",
    "OverallResponsibilityAssigned": "responsibility",
    "MeetingScheduled": "meeting", "MeetingHeld": "meeting",
    "MeetingInvited": "meeting", "MeetingAnswered": "meeting",
    "MeetingRescheduled": "meeting", "MeetingCancelled": "meeting",
    "FollowUpDateSet": "follow-up", "FollowUpRecorded": "follow-up",
    "DeviationReported": "deviation", "DeviationAnswered": "deviation",
    "CostAllocationProposed": "cost-allocation", "CostAllocationAgreed": "cost-allocation",
    "ChangesApproved": "approval", "ChangesRejected": "approval",
}  # fmt: skip
OPEN_STATUSES = frozenset({"draft", "active", "on-hold"})


def occurrences(event_name: str, payload: Mapping[str, Any], plan: Plan) -> list[Occurrence]:
    """What a plan event means for each topic."""
    found = []
    if event_name in PART_OF_EVENT:
        found.append(Occurrence(PLAN_CHANGED, PART_OF_EVENT[event_name]))
    if event_name == "OrganizationInvited":
        invited = transcoded_text(payload.get("hsa_id"))
        found.append(Occurrence(ORGANIZATION_INVITED, told_to=frozenset({invited})))
    elif event_name == "DeviationReported":
        found.append(Occurrence(DEVIATION_REPORTED, told_to=_deviation_told_to(payload, plan)))
    elif event_name == "ConsentWithdrawn":
        found.append(Occurrence(CONSENT_WITHDRAWN))
    return found


def _deviation_told_to(payload: Mapping[str, Any], plan: Plan) -> frozenset[str]:
    deviation_id = transcoded_text(payload.get("deviation_id"))
    if deviation_id in plan.deviations:
        against = plan.deviation_against(deviation_id)
        if against:
            return frozenset({against})
    reporter = transcoded_text(payload.get("organization"))
    return frozenset(plan.organizations) - {reporter}


class OverdueFollowUps:
    """The time-driven check of follow-up-overdue: each open plan whose follow-up date has
    passed, keyed by that date, so each follow-up is told once."""

    def __init__(self, index: PlanIndex) -> None:
        self.index = index

    def __call__(self) -> list[tuple[str, str, str]]:
        today = swedish_today()
        self.index.catch_up()
        due = self.index.search(status=OPEN_STATUSES, follow_up_due_by=today)
        found = []
        for plan_id in due:
            plan = self.index.application.aggregate(plan_id)
            if plan.follow_up_overdue(today) and plan.next_follow_up is not None:
                found.append((FOLLOW_UP_OVERDUE, str(plan_id), plan.next_follow_up.isoformat()))
        return found
