"""A plan as one reader may see it: the one place where entries are withheld.

Every way a plan leaves the service (read, `_at`, vread, `_history`, search and `_include`,
`$as-of`, the CareTeam/Goal/Appointment views, an operation's answer) renders `redact(plan,
disclosure)`, never the plan itself. The copy keeps the plan's frame (id, status, subject,
period, who takes part, overall responsibility, next follow-up, closure), drops the entries
whose custodian the reader may not see, and lists what it dropped: custodian, kind and the
part it belonged to (the renderers show counts per custodian and kind, never content or ids).
The rule itself is in docs/disclosure.md.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from services.common.disclosure import Disclosure, custodian_of
from services.sip.domain import Plan
from services.sip.parts import Goal, Intervention, Meeting

# What the cost allocation entries are called: shown to the principals taking part only.
COST_ALLOCATION = "cost-allocation"
# A participant's answer to a meeting invitation: the answering organisation's (or the
# person's) entry, seen where its other entries are.
MEETING_ANSWER = "meeting-answer"
# Why the pending changes were rejected: the entry of whoever recorded the rejection.
REJECTION_REASON = "rejection-reason"
# The plan's events that record an entry of a kind withheld whoever its custodian is.
_KIND_OF_EVENT = {
    "CostAllocationProposed": COST_ALLOCATION,
    "CostAllocationAgreed": COST_ALLOCATION,
}


def entry_kind_of_topic(topic: str) -> str | None:
    """The kind of entry a plan event records, for the event feed
    (`services.sip.domain:Plan.CostAllocationProposed` is a cost allocation)."""
    return _KIND_OF_EVENT.get(topic.rpartition(".")[2])


@dataclass(frozen=True)
class Withheld:
    """One entry a reader does not see. `part` (a goal's or meeting's id) only tells a view
    whether the mark concerns it; it is never shown."""

    custodian: str | None
    kind: str
    part: str | None = None


def withheld_of(plan: Plan) -> tuple[Withheld, ...]:
    """What was withheld from this (redacted) plan; nothing for a plan read whole."""
    return getattr(plan, "withheld", ())


def withheld_parts(plan: Plan) -> set[str]:
    """The ids of the goals, needs, meetings, ... withheld from this (redacted) plan."""
    return {entry.part for entry in withheld_of(plan) if isinstance(entry.part, str)}


def withheld_counts(withheld: Iterable[Withheld]) -> list[tuple[str | None, str, int]]:
    """(custodian, kind, how many), in a stable order."""
    counts = Counter((entry.custodian, entry.kind) for entry in withheld)
    return [(c, k, n) for (c, k), n in sorted(counts.items(), key=lambda i: (str(i[0]), i[0][1]))]


T = TypeVar("T")


def _kept(
    entries: Mapping[str, T],
    kind: str,
    custodian: Callable[[T], str | None],
    disclosure: Disclosure,
    withheld: list[Withheld],
) -> dict[str, T]:
    kept = {}
    for part, entry in entries.items():
        if disclosure.sees_entry(kind, custodian(entry)):
            kept[part] = entry
        else:
            withheld.append(Withheld(custodian(entry), kind, part))
    return kept


def redact(plan: Plan, disclosure: Disclosure) -> Plan:
    """The plan as the reader of `disclosure` may see it (the plan itself when they see all)."""
    if disclosure.complete and not disclosure.withheld_kinds:
        return plan
    withheld: list[Withheld] = []
    seen = copy.copy(plan)
    starter = plan.starting_organization
    for text in ("title", "description"):
        if getattr(plan, text) and not disclosure.sees_entry(text, starter):
            setattr(seen, text, None)
            withheld.append(Withheld(starter, text))
    seen.needs = _kept(plan.needs, "need", lambda n: n.custodian, disclosure, withheld)
    seen.participants = _kept(
        plan.participants, "participant", lambda p: p.custodian, disclosure, withheld
    )
    goals = _kept(plan.goals, "goal", lambda g: g.custodian, disclosure, withheld)
    seen.goals = {i: _goal(g, seen, disclosure, withheld) for i, g in goals.items()}
    interventions = _kept(
        plan.interventions, "intervention", lambda i: i.custodian, disclosure, withheld
    )
    seen.interventions = {i: _intervention(e, seen) for i, e in interventions.items()}
    meetings = _kept(plan.meetings, "meeting", lambda m: m.custodian, disclosure, withheld)
    seen.meetings = {i: _meeting(m, disclosure, withheld) for i, m in meetings.items()}
    follow_ups = _kept(
        dict(enumerate(plan.follow_ups)), "follow-up", lambda f: f.custodian, disclosure, withheld
    )
    seen.follow_ups = list(follow_ups.values())
    allocations = {
        i: a for i, a in plan.cost_allocations.items() if a.intervention_id in seen.interventions
    }
    withheld += [
        Withheld(a.custodian, COST_ALLOCATION, i)
        for i, a in plan.cost_allocations.items()
        if i not in allocations
    ]
    seen.cost_allocations = _kept(
        allocations, COST_ALLOCATION, lambda a: a.custodian, disclosure, withheld
    )
    deviations = _kept(plan.deviations, "deviation", lambda d: d.custodian, disclosure, withheld)
    seen.deviations = {i: _deviation(d, disclosure, withheld) for i, d in deviations.items()}
    _changes(plan, seen, disclosure, withheld)
    _proposals(plan, seen, disclosure)
    seen.withheld = tuple(withheld)
    return seen


def _goal(goal: Goal, seen: Plan, disclosure: Disclosure, withheld: list[Withheld]) -> Goal:
    goal = replace(goal, need_ids=tuple(n for n in goal.need_ids if n in seen.needs))
    if goal.assessment_note and not disclosure.sees_entry("goal-assessment", goal.assessed_by):
        withheld.append(Withheld(goal.assessed_by, "goal-assessment", goal.id))
        goal = replace(goal, assessment_note=None)
    return goal


def _intervention(intervention: Intervention, seen: Plan) -> Intervention:
    """No reference to a need or goal the reader does not see."""
    return replace(
        intervention,
        need_ids=tuple(n for n in intervention.need_ids if n in seen.needs),
        goal_ids=tuple(g for g in intervention.goal_ids if g in seen.goals),
    )


def _meeting(meeting: Meeting, disclosure: Disclosure, withheld: list[Withheld]) -> Meeting:
    seen = [disclosure.sees_entry(MEETING_ANSWER, a.custodian) for a in meeting.answers]
    answers = tuple(a for a, shown in zip(meeting.answers, seen, strict=True) if shown)
    withheld += [
        Withheld(a.custodian, MEETING_ANSWER, meeting.id)
        for a, shown in zip(meeting.answers, seen, strict=True)
        if not shown
    ]
    meeting = replace(meeting, answers=answers)
    if meeting.notes and not disclosure.sees_entry("meeting-notes", meeting.notes_custodian):
        withheld.append(Withheld(meeting.notes_custodian, "meeting-notes", meeting.id))
        return replace(meeting, notes=None)
    return meeting


def _deviation(deviation: Any, disclosure: Disclosure, withheld: list[Withheld]) -> Any:
    answer = deviation.answer
    if answer is not None and not disclosure.sees_entry("deviation-answer", answer.custodian):
        withheld.append(Withheld(answer.custodian, "deviation-answer"))
        return replace(deviation, answer=None)
    return deviation


def _changes(plan: Plan, seen: Plan, disclosure: Disclosure, withheld: list[Withheld]) -> None:
    """The changes waiting for (or given) approval, or rejected, name what changed, a
    follow-up's changes in words: each is its author's entry. A rejection's reason is the
    entry of whoever recorded the rejection (the person's, unless staff recorded a meeting's)."""

    def shown(changes: Iterable[Any]) -> list[Any]:
        kept = []
        for change in changes:
            custodian = custodian_of(change.by)
            if disclosure.sees_entry("change", custodian):
                kept.append(change)
            else:
                withheld.append(Withheld(custodian, "change"))
        return kept

    seen.pending_changes = shown(plan.pending_changes)
    seen.approvals = [
        replace(approval, changes=tuple(shown(approval.changes))) for approval in plan.approvals
    ]
    seen.rejections = []
    for rejection in plan.rejections:
        rejection = replace(rejection, changes=tuple(shown(rejection.changes)))
        recorder = custodian_of(rejection.by)
        if rejection.reason and not disclosure.sees_entry(REJECTION_REASON, recorder):
            withheld.append(Withheld(recorder, REJECTION_REASON))
            rejection = replace(rejection, reason=None)
        seen.rejections.append(rejection)


def _proposals(plan: Plan, seen: Plan, disclosure: Disclosure) -> None:
    """A goal's proposed text and assessment and an intervention's proposed status are their
    proposer's entries (the proposing change itself is marked withheld by `_changes`)."""
    for goal_id, goal in seen.goals.items():
        if goal.proposal and not disclosure.sees_entry("change", plan.proposer_of(goal_id)):
            goal = seen.goals[goal_id] = replace(goal, proposal=None)
        assessment = goal.proposed_assessment
        if assessment and not disclosure.sees_entry("change", assessment.assessed_by):
            seen.goals[goal_id] = replace(goal, proposed_assessment=None)
    for entry, intervention in seen.interventions.items():
        if intervention.proposed_status and not disclosure.sees_entry(
            "change", plan.proposer_of(entry)
        ):
            seen.interventions[entry] = replace(
                intervention, proposed_status=None, proposed_status_reason=None
            )


def custodians_of_entries(plan: Plan) -> set[str]:
    """Every custodian of an entry in this version of the plan."""
    custodians: set[str | None] = {plan.starting_organization}
    for entries in (
        plan.needs,
        plan.participants,
        plan.goals,
        plan.interventions,
        plan.meetings,
        plan.cost_allocations,
        plan.deviations,
    ):
        custodians |= {entry.custodian for entry in entries.values()}
    custodians |= {goal.assessed_by for goal in plan.goals.values()}
    custodians |= {meeting.notes_custodian for meeting in plan.meetings.values()}
    custodians |= {a.custodian for meeting in plan.meetings.values() for a in meeting.answers}
    custodians |= {d.answer.custodian for d in plan.deviations.values() if d.answer}
    custodians |= {follow_up.custodian for follow_up in plan.follow_ups}
    custodians |= {custodian_of(change.by) for change in plan.pending_changes}
    custodians |= {
        custodian_of(change.by)
        for decision in (*plan.approvals, *plan.rejections)
        for change in decision.changes
    }
    custodians |= {custodian_of(r.by) for r in plan.rejections if r.reason}
    return {custodian for custodian in custodians if custodian}
