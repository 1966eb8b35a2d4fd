"""The plan aggregate's rules, each shown refusing, and its life from start to closure."""

from datetime import UTC, date, datetime

import pytest

from services.common.domain import InvalidCommand, RuleViolation
from services.sip.domain import Plan

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
BY = {"subject": "anna", "role": "coordinator", "organization": "SE2321000032-R1", "unit": None}
REGION, MUNICIPALITY, SCHOOL = "SE2321000032-R1", "SE2120000357-K1", "SE5560000000-S1"


def started(kind: str = "region") -> Plan:
    return Plan(
        subject={"system": "http://electronichealth.se/identifier/personnummer", "value": "1"},
        starting_organization=REGION if kind == "region" else MUNICIPALITY,
        starting_organization_kind=kind,
        initiative="region-unit",
        title="SIP",
        description=None,
        started_at=NOW,
        started_by=BY,
    )


def intervention(**changes):
    return {
        "text": "Hemtjänst",
        "kind": "support",
        "need_ids": ["need-1"],
        "goal_ids": [],
        "performer_organization": MUNICIPALITY,
        "performer_unit": None,
        "performer_participant": None,
        "responsible_principal": "municipality",
        "responsible_organization": MUNICIPALITY,
        "start": None,
        "end": None,
    } | changes


def ready() -> Plan:
    plan = started()
    plan.invite_organization(hsa_id=MUNICIPALITY, kind="municipality", name=None, at=NOW, by=BY)
    plan.record_need(text="Jag vill bo hemma", wishes=None, at=NOW, by=BY)
    plan.assign_intervention(intervention=intervention(), at=NOW, by=BY)
    plan.assign_overall_responsibility(organization=REGION, reason=None, at=NOW, by=BY)
    plan.set_follow_up(follow_up_date=date(2027, 3, 1), at=NOW, by=BY)
    return plan


def refused(rule: str, command, *args, **kwargs) -> RuleViolation:
    with pytest.raises(RuleViolation) as refusal:
        command(*args, **kwargs)
    assert refusal.value.rule == rule, refusal.value.message
    return refusal.value


def test_a_plan_starts_as_a_draft_of_the_starting_organisation():
    plan = started()
    assert (plan.status, plan.version) == ("draft", 1)
    assert plan.takes_part(REGION) and not plan.takes_part(MUNICIPALITY)


@pytest.mark.parametrize(
    ("missing", "rule"),
    [
        ("municipality", "activation-needs-both-principals"),
        ("overall", "activation-needs-overall-responsibility"),
        ("need", "activation-needs-a-need"),
        ("intervention", "activation-needs-an-intervention"),
        ("follow-up", "activation-needs-follow-up-date"),
    ],
)
def test_activation_needs_what_the_law_and_practice_require(missing, rule):
    plan = started()
    if missing != "municipality":
        plan.invite_organization(hsa_id=MUNICIPALITY, kind="municipality", name=None, at=NOW, by=BY)
    if missing != "need":
        plan.record_need(text="Behov", wishes=None, at=NOW, by=BY)
    if missing not in ("intervention", "municipality", "need"):
        plan.assign_intervention(intervention=intervention(), at=NOW, by=BY)
    if missing != "overall":
        plan.assign_overall_responsibility(organization=REGION, reason=None, at=NOW, by=BY)
    if missing != "follow-up":
        plan.set_follow_up(follow_up_date=date(2027, 1, 1), at=NOW, by=BY)
    problem = refused(rule, plan.activate, consents=["c1"], at=NOW, by=BY)
    assert rule in problem.message
    assert plan.status == "draft"


def test_activation_needs_a_consent_and_only_a_draft_is_activated():
    plan = ready()
    refused("activation-requires-consent", plan.activate, consents=[], at=NOW, by=BY)
    plan.activate(consents=["c1"], at=NOW, by=BY)
    assert plan.status == "active"
    refused("activate-only-draft", plan.activate, consents=["c1"], at=NOW, by=BY)


def test_interventions_only_to_organisations_taking_part():
    plan = started()
    plan.record_need(text="Behov", wishes=None, at=NOW, by=BY)
    refused(
        "intervention-organization-takes-part",
        plan.assign_intervention,
        intervention=intervention(),
        at=NOW,
        by=BY,
    )
    plan.invite_organization(hsa_id=MUNICIPALITY, kind="municipality", name=None, at=NOW, by=BY)
    refused(
        "responsible-principal-matches-organization",
        plan.assign_intervention,
        intervention=intervention(responsible_principal="region"),
        at=NOW,
        by=BY,
    )
    refused(
        "known-need",
        plan.assign_intervention,
        intervention=intervention(need_ids=["need-9"]),
        at=NOW,
        by=BY,
    )
    assert plan.assign_intervention(intervention=intervention(), at=NOW, by=BY) == "intervention-1"


def test_what_others_than_the_principals_do_is_part_of_the_plan():
    plan = ready()
    person = plan.add_participant(participant={"kind": "person", "name": "Tolvan"}, at=NOW, by=BY)
    plan.invite_organization(hsa_id=SCHOOL, kind="other", name="Skolan", at=NOW, by=BY)
    walks = plan.assign_intervention(
        intervention=intervention(
            text="Promenad varje dag",
            kind="self-care",
            performer_organization=None,
            performer_participant=person,
            responsible_principal="other",
            responsible_organization=None,
        ),
        at=NOW,
        by=BY,
    )
    plan.assign_intervention(
        intervention=intervention(
            text="Anpassad studiegång",
            kind="support",
            performer_organization=SCHOOL,
            responsible_principal="other",
            responsible_organization=SCHOOL,
        ),
        at=NOW,
        by=BY,
    )
    assert plan.interventions[walks].responsible_principal == "other"


def test_overall_responsibility_lies_with_a_principal_and_transfers_with_a_reason():
    plan = started()
    plan.invite_organization(hsa_id=SCHOOL, kind="other", name=None, at=NOW, by=BY)
    plan.invite_organization(hsa_id=MUNICIPALITY, kind="municipality", name=None, at=NOW, by=BY)
    refused(
        "overall-responsibility-principal",
        plan.assign_overall_responsibility,
        organization=SCHOOL,
        reason=None,
        at=NOW,
        by=BY,
    )
    plan.assign_overall_responsibility(organization=REGION, reason=None, at=NOW, by=BY)
    refused(
        "overall-responsibility-transfer-reason",
        plan.assign_overall_responsibility,
        organization=MUNICIPALITY,
        reason=None,
        at=NOW,
        by=BY,
    )
    plan.assign_overall_responsibility(
        organization=MUNICIPALITY, reason="Flyttar hem", at=NOW, by=BY
    )
    assert plan.overall_responsibility.previous == REGION


def test_relatives_take_part_only_where_the_person_agrees():
    plan = started()
    refused(
        "relative-needs-person-agreement",
        plan.add_participant,
        participant={"kind": "relative", "name": "Syster"},
        at=NOW,
        by=BY,
    )
    plan.add_participant(
        participant={"kind": "relative", "name": "Syster", "person_agrees": True}, at=NOW, by=BY
    )
    refused(
        "participant-organization-takes-part",
        plan.add_participant,
        participant={"kind": "professional", "organization": SCHOOL},
        at=NOW,
        by=BY,
    )


def test_changes_to_an_active_plan_wait_for_the_persons_approval():
    plan = ready()
    plan.activate(consents=["c1"], at=NOW, by=BY)
    assert plan.pending_changes == []
    goal = plan.set_goal(
        text="Klara mig själv", target_date=date(2027, 6, 1), need_ids=["need-1"], at=NOW, by=BY
    )
    plan.record_follow_up(
        reviewed="Hemtjänsten fungerar",
        changes="Nytt mål",
        next_date=date(2027, 6, 1),
        at=NOW,
        by=BY,
    )
    assert [c.change for c in plan.pending_changes] == [
        f"{goal} set",
        "follow-up changes: Nytt mål",
    ]
    plan.approve_changes(approved_by="person", meeting_id=None, at=NOW, by=BY)
    assert plan.pending_changes == [] and plan.approvals[0].approved_by == "person"
    refused(
        "changes-to-approve",
        plan.approve_changes,
        approved_by="person",
        meeting_id=None,
        at=NOW,
        by=BY,
    )


def test_a_meeting_can_approve_the_changes():
    plan = ready()
    plan.activate(consents=["c1"], at=NOW, by=BY)
    refused(
        "meeting-place", plan.schedule_meeting, meeting={"start": NOW, "end": NOW}, at=NOW, by=BY
    )
    meeting = plan.schedule_meeting(
        meeting={"start": NOW, "end": NOW, "location": "Vårdcentralen", "invitees": ["Tolvan"]},
        at=NOW,
        by=BY,
    )
    plan.record_need(text="Sömnproblem", wishes=None, at=NOW, by=BY)
    refused(  # attendees name participants: a name alone does not show the person was there
        "meeting-approval-needs-the-person",
        plan.record_meeting,
        meeting_id=meeting,
        attendees=["Tolvan"],
        notes=None,
        approved_changes=True,
        at=NOW,
        by=BY,
    )
    person = plan.add_participant(participant={"kind": "person", "name": "Tolvan"}, at=NOW, by=BY)
    plan.record_meeting(
        meeting_id=meeting, attendees=[person], notes=None, approved_changes=True, at=NOW, by=BY
    )
    assert plan.pending_changes == [] and plan.approvals[0].meeting_id == meeting


def test_goals_are_revised_and_assessed():
    plan = ready()
    goal = plan.set_goal(text="Gå till affären", target_date=None, need_ids=[], at=NOW, by=BY)
    plan.revise_goal(
        goal_id=goal,
        text="Gå till affären själv",
        target_date=date(2027, 1, 1),
        reason="Bättre formulerat",
        at=NOW,
        by=BY,
    )
    refused(
        "goal-outcome", plan.assess_goal, goal_id=goal, outcome="great", note=None, at=NOW, by=BY
    )
    plan.assess_goal(goal_id=goal, outcome="achieved", note=None, at=NOW, by=BY)
    assert plan.goals[goal].status == "completed"
    assert plan.goals[goal].revisions[0].text == "Gå till affären"


def test_a_stopped_intervention_needs_a_reason():
    plan = ready()
    refused(
        "stopped-intervention-reason",
        plan.change_intervention_status,
        intervention_id="intervention-1",
        status="stopped",
        reason=None,
        at=NOW,
        by=BY,
    )
    plan.change_intervention_status(
        intervention_id="intervention-1", status="stopped", reason="Flyttat", at=NOW, by=BY
    )


def test_the_default_split_only_when_both_principals_find_the_split_unclear():
    plan = ready()
    unclear = {
        "intervention_id": "intervention-1",
        "period_start": date(2027, 1, 1),
        "period_end": None,
        "at": NOW,
        "by": BY,
    }
    refused("default-split-only-when-unclear", plan.propose_cost_allocation, shares=[], **unclear)
    allocation = plan.propose_cost_allocation(shares=[], split_unclear=True, **unclear)
    shares = {s.organization: s.percent for s in plan.cost_allocations[allocation].shares}
    assert shares == {REGION: 33.33, MUNICIPALITY: 66.67}
    # The region declared the split unclear: that is its agreement; the municipality's is due.
    assert plan.cost_allocations[allocation].split_unclear_by == (REGION,)
    assert not plan.cost_allocations[allocation].in_force
    refused(
        "cost-agreed-once",
        plan.agree_cost_allocation,
        allocation_id=allocation,
        organization=REGION,
        at=NOW,
        by=BY,
    )
    plan.agree_cost_allocation(allocation_id=allocation, organization=MUNICIPALITY, at=NOW, by=BY)
    assert plan.cost_allocations[allocation].in_force
    assert plan.cost_allocations[allocation].split_unclear_by == (REGION, MUNICIPALITY)
    refused(
        "cost-shares-whole",
        plan.propose_cost_allocation,
        intervention_id="intervention-1",
        shares=[
            {"organization": REGION, "percent": 50.0, "amount_sek": None},
            {"organization": MUNICIPALITY, "percent": 40.0, "amount_sek": None},
        ],
        period_start=date(2027, 1, 1),
        period_end=None,
        at=NOW,
        by=BY,
    )


def test_deviations_are_tracked_until_answered():
    plan = ready()
    deviation = plan.report_deviation(
        organization=REGION,
        intervention_id="intervention-1",
        text="Hemtjänsten kom inte",
        at=NOW,
        by=BY,
    )
    assert [d.id for d in plan.open_deviations] == [deviation]
    refused(
        "deviation-by-participant",
        plan.report_deviation,
        organization=SCHOOL,
        intervention_id=None,
        text="x",
        at=NOW,
        by=BY,
    )
    plan.answer_deviation(
        deviation_id=deviation,
        organization=MUNICIPALITY,
        answer="Personalbrist, åtgärdat",
        at=NOW,
        by=BY,
    )
    assert plan.open_deviations == []


BY_MUNICIPALITY = {**BY, "subject": "bertil", "organization": MUNICIPALITY}


def accept(plan: Plan, organization: str, **changes):
    values = {"unit": None, "contact": None, "at": NOW, "by": BY_MUNICIPALITY} | changes
    plan.accept_invitation(organization=organization, **values)


def test_an_invited_organisation_accepts_its_invitation_once():
    plan = ready()
    assert plan.invitations_pending == [MUNICIPALITY]
    # The starting organisation takes part from the start: it has nothing to accept.
    assert plan.organizations[REGION].acceptance is not None
    starter = refused("invitation-accepted-once", accept, plan, REGION, by=BY)
    assert "takes part from the start" in starter.message
    refused("invitation-accepted-by-invited", accept, plan, SCHOOL)
    later = datetime(2026, 11, 24, 9, tzinfo=UTC)
    accept(plan, MUNICIPALITY, unit="SE2120000357-E1", contact="Bertil Berg", at=later)
    acceptance = plan.organizations[MUNICIPALITY].acceptance
    assert (acceptance.at, acceptance.unit, acceptance.contact) == (
        later,
        "SE2120000357-E1",
        "Bertil Berg",
    )
    assert plan.invitations_pending == [] and plan.changed_by == BY_MUNICIPALITY
    refused("invitation-accepted-once", accept, plan, MUNICIPALITY)


def test_an_acceptance_on_an_active_plan_waits_for_no_approval():
    plan = ready()
    plan.activate(consents=["c1"], at=NOW, by=BY)
    accept(plan, MUNICIPALITY)
    assert plan.pending_changes == [] and plan.invitations_pending == []
    # An organisation proposed on the active plan may answer; the answer comes in with it.
    plan.invite_organization(hsa_id=SCHOOL, kind="other", name=None, at=NOW, by=BY)
    accept(plan, SCHOOL, contact="Rektor", by={**BY, "organization": SCHOOL})
    assert not plan.takes_part(SCHOOL) and plan.invitations_pending == []
    plan.approve_changes(approved_by="person", meeting_id=None, at=NOW, by=BY)
    assert plan.organizations[SCHOOL].acceptance.contact == "Rektor"
    plan.close(reason="moved", note=None, replaced_by=None, at=NOW, by=BY)
    refused("closed-plan-unchanged", accept, plan, SCHOOL)


def test_organisations_invited_before_acceptances_were_recorded_replay_as_pending():
    plan = ready()
    replayed = None
    for stored in plan.collect_events():  # the events as stored, none of them an acceptance
        replayed = stored.mutate(replayed)
    assert replayed.organizations[MUNICIPALITY].acceptance is None
    assert replayed.invitations_pending == [MUNICIPALITY]


PERSON = {"subject": "tolvan", "role": "patient", "organization": None, "unit": None}
LATER = datetime(2026, 12, 1, 10, tzinfo=UTC)


def reject(plan: Plan, **changes):
    values = {"rejected_by": "person", "meeting_id": None, "reason": None, "at": LATER}
    plan.reject_changes(**(values | {"by": PERSON} | changes))


def active() -> Plan:
    """ready(), with the person taking part (participant-1) and goal-1 set, then activated."""
    plan = ready()
    plan.add_participant(participant={"kind": "person", "name": "Tolvan"}, at=NOW, by=BY)
    plan.set_goal(text="Handla själv", target_date=None, need_ids=["need-1"], at=NOW, by=BY)
    plan.activate(consents=["c1"], at=NOW, by=BY)
    return plan


def approved_content(plan: Plan) -> tuple:
    return (
        dict(plan.organizations),
        dict(plan.participants),
        dict(plan.needs),
        dict(plan.goals),
        dict(plan.interventions),
        plan.overall_responsibility,
        plan.next_follow_up,
    )


def propose_everything(plan: Plan) -> None:
    """Staff change the active plan in every way that waits for the person's approval."""
    need = plan.record_need(text="Sömnproblem", wishes=None, at=NOW, by=BY)
    goal = plan.set_goal(text="Sova", target_date=None, need_ids=[need], at=NOW, by=BY)
    plan.assign_intervention(
        intervention=intervention(need_ids=[need], goal_ids=[goal]), at=NOW, by=BY
    )
    plan.add_participant(
        participant={"kind": "relative", "name": "Mamma", "person_agrees": True}, at=NOW, by=BY
    )
    plan.invite_organization(hsa_id=SCHOOL, kind="other", name="Skolan", at=NOW, by=BY)
    accept(plan, SCHOOL, contact="Rektor", by={**BY, "organization": SCHOOL})
    plan.revise_goal(
        goal_id="goal-1", text="Handla två gånger", target_date=None, reason="x", at=NOW, by=BY
    )
    plan.assess_goal(goal_id="goal-1", outcome="achieved", note=None, at=NOW, by=BY)
    plan.change_intervention_status(
        intervention_id="intervention-1", status="stopped", reason="Flyttat", at=NOW, by=BY
    )
    plan.assign_overall_responsibility(organization=MUNICIPALITY, reason="Flytt", at=NOW, by=BY)
    plan.set_follow_up(follow_up_date=date(2027, 9, 1), at=NOW, by=BY)
    plan.propose_cost_allocation(
        intervention_id="intervention-2",
        shares=[
            {"organization": REGION, "percent": 50.0, "amount_sek": None},
            {"organization": MUNICIPALITY, "percent": 50.0, "amount_sek": None},
        ],
        period_start=date(2027, 1, 1),
        period_end=None,
        at=NOW,
        by=BY,
    )


def test_the_person_rejects_every_pending_change_and_the_approved_plan_stays():
    plan = active()
    approved = approved_content(plan)
    propose_everything(plan)
    # The person's own goal, in force at once, addresses the need staff proposed.
    plan.set_goal(text="Somna själv", target_date=None, need_ids=["need-2"], at=NOW, by=PERSON)
    changes = list(plan.pending_changes)
    assert len(changes) == 10  # the cost allocation waits for the principals, not the person

    reject(plan, reason="Inte nu")
    organizations, participants, needs, goals, interventions, overall, follow_up = approved
    assert plan.pending_changes == [] and plan.proposed_organizations == {}
    assert plan.organizations == organizations and not plan.takes_part(SCHOOL)
    assert plan.participants == participants and plan.needs == needs
    assert plan.interventions == interventions and plan.cost_allocations == {}
    assert plan.goals["goal-1"] == goals["goal-1"]  # neither revised nor assessed
    # The person's goal stays, without its reference to the rejected need.
    assert plan.goals["goal-3"].text == "Somna själv" and plan.goals["goal-3"].need_ids == ()
    assert set(plan.goals) == {"goal-1", "goal-3"}
    assert plan.overall_responsibility == overall and plan.proposed_overall_responsibility is None
    assert plan.next_follow_up == follow_up == date(2027, 3, 1)
    (rejection,) = plan.rejections
    assert (rejection.rejected_by, rejection.reason, rejection.at) == ("person", "Inte nu", LATER)
    assert list(rejection.changes) == changes and rejection.by == PERSON
    assert set(rejection.dropped) == {
        "need-2", "goal-2", "intervention-2", "participant-2", SCHOOL, "cost-1"
    }  # fmt: skip
    assert plan.changed_by == PERSON and plan.approvals == []
    refused("changes-to-reject", reject, plan)


def test_ids_a_rejection_dropped_are_never_given_again():
    plan = active()
    propose_everything(plan)
    reject(plan)
    assert plan.record_need(text="Oro", wishes=None, at=NOW, by=BY) == "need-3"
    assert plan.set_goal(text="Lugn", target_date=None, need_ids=[], at=NOW, by=BY) == "goal-3"
    assert plan.assign_intervention(intervention=intervention(), at=NOW, by=BY) == (
        "intervention-3"
    )
    assert plan.add_participant(participant={"kind": "guardian"}, at=NOW, by=BY) == (
        "participant-3"
    )
    shares = [
        {"organization": REGION, "percent": 50.0, "amount_sek": None},
        {"organization": MUNICIPALITY, "percent": 50.0, "amount_sek": None},
    ]
    allocation = plan.propose_cost_allocation(
        intervention_id="intervention-3",
        shares=shares,
        period_start=date(2027, 1, 1),
        period_end=None,
        at=NOW,
        by=BY,
    )
    assert allocation == "cost-2"
    # The new proposals are approved as any are; the school may be invited again.
    plan.invite_organization(hsa_id=SCHOOL, kind="other", name=None, at=NOW, by=BY)
    plan.approve_changes(approved_by="person", meeting_id=None, at=NOW, by=PERSON)
    assert {"need-3", "goal-3", "intervention-3", "participant-3"} <= (
        set(plan.needs) | set(plan.goals) | set(plan.interventions) | set(plan.participants)
    )
    assert plan.takes_part(SCHOOL) and plan.organizations[SCHOOL].acceptance is None


def test_a_rejection_replays_to_the_same_plan():
    plan = active()
    propose_everything(plan)
    reject(plan, reason="Nej")
    plan.record_need(text="Oro", wishes=None, at=NOW, by=BY)
    replayed = None
    for stored in plan.collect_events():
        replayed = stored.mutate(replayed)
    for part in ("organizations", "participants", "needs", "goals", "interventions",
                 "cost_allocations", "rejections", "pending_changes", "next_follow_up",
                 "overall_responsibility", "proposed_overall_responsibility"):  # fmt: skip
        assert getattr(replayed, part) == getattr(plan, part), part
    assert list(replayed.needs) == ["need-1", "need-3"]


def test_a_rejected_follow_up_date_gives_way_to_the_approved_one_unless_a_follow_up_moved_it():
    plan = active()
    plan.set_follow_up(follow_up_date=date(2027, 5, 1), at=NOW, by=BY)
    plan.set_follow_up(follow_up_date=date(2027, 6, 1), at=NOW, by=BY)
    reject(plan)
    assert plan.next_follow_up == date(2027, 3, 1)
    plan.set_follow_up(follow_up_date=date(2027, 5, 1), at=NOW, by=BY)
    # A follow-up held sets the next date itself: what was proposed before is no longer there.
    plan.record_follow_up(
        reviewed="Fungerar", changes="Tätare", next_date=date(2027, 4, 1), at=NOW, by=BY
    )
    reject(plan)
    assert plan.next_follow_up == date(2027, 4, 1) and len(plan.follow_ups) == 1
    # An approved date stays approved.
    plan.set_follow_up(follow_up_date=date(2027, 8, 1), at=NOW, by=BY)
    plan.approve_changes(approved_by="person", meeting_id=None, at=NOW, by=PERSON)
    plan.record_need(text="Oro", wishes=None, at=NOW, by=BY)
    reject(plan)
    assert plan.next_follow_up == date(2027, 8, 1)


def test_a_meeting_the_person_attended_may_reject_and_a_rejection_only_on_an_open_plan():
    plan = active()
    plan.record_need(text="Oro", wishes=None, at=NOW, by=BY)
    meeting = plan.schedule_meeting(
        meeting={"start": NOW, "end": NOW, "location": "Vårdcentralen"}, at=NOW, by=BY
    )
    refused("rejecter", reject, plan, rejected_by="staff")
    refused("meeting-rejection-needs-the-person", reject, plan, rejected_by="meeting",
            meeting_id=meeting, by=BY)  # fmt: skip
    plan.record_meeting(
        meeting_id=meeting, attendees=["participant-1"], notes=None, approved_changes=False,
        at=NOW, by=BY,
    )  # fmt: skip
    reject(plan, rejected_by="meeting", meeting_id=meeting, by=BY)
    assert plan.rejections[0].meeting_id == meeting and "need-2" not in plan.needs
    plan.record_need(text="Oro igen", wishes=None, at=NOW, by=BY)
    plan.close(reason="person-withdrew", note=None, replaced_by=None, at=NOW, by=PERSON)
    refused("closed-plan-unchanged", reject, plan)


def test_the_persons_own_changes_and_a_draft_leave_nothing_to_reject():
    plan = ready()
    plan.record_need(text="Behov", wishes=None, at=NOW, by=BY)
    refused("changes-to-reject", reject, plan)  # a draft: every change in force at once
    plan.activate(consents=["c1"], at=NOW, by=BY)
    plan.record_need(text="Mina ord", wishes=None, at=NOW, by=PERSON)
    refused("changes-to-reject", reject, plan)


def test_the_person_may_end_the_plan_and_then_nothing_changes():
    plan = ready()
    plan.activate(consents=["c1"], at=NOW, by=BY)
    refused(
        "replaced-by-plan",
        plan.close,
        reason="replaced",
        note=None,
        replaced_by=None,
        at=NOW,
        by=BY,
    )
    plan.close(reason="person-withdrew", note="Vill inte längre", replaced_by=None, at=NOW, by=BY)
    assert plan.status == "revoked"
    for command, kwargs in (
        (plan.record_need, {"text": "x", "wishes": None}),
        (plan.invite_organization, {"hsa_id": SCHOOL, "kind": "other", "name": None}),
        (plan.set_follow_up, {"follow_up_date": date(2027, 1, 1)}),
        (plan.close, {"reason": "moved", "note": None, "replaced_by": None}),
    ):
        refused("closed-plan-unchanged", command, at=NOW, by=BY, **kwargs)


def test_overdue_follow_ups_are_findable():
    plan = ready()
    assert plan.follow_up_overdue(date(2027, 3, 2)) and not plan.follow_up_overdue(date(2027, 3, 1))


@pytest.mark.parametrize(
    ("element", "command"),
    [
        ("organization", lambda plan: plan.invite_organization(
            hsa_id=None, kind="municipality", name=None, at=NOW, by=BY)),
        ("organization", lambda plan: plan.invite_organization(
            hsa_id="", kind="municipality", name=None, at=NOW, by=BY)),
        ("text", lambda plan: plan.record_need(text=None, wishes=None, at=NOW, by=BY)),
        ("text", lambda plan: plan.record_need(text="a\x00b", wishes=None, at=NOW, by=BY)),
        ("text", lambda plan: plan.record_need(text="\ud800", wishes=None, at=NOW, by=BY)),
        ("text", lambda plan: plan.record_need(text=5, wishes=None, at=NOW, by=BY)),
        ("text", lambda plan: plan.set_goal(
            text=None, target_date=None, need_ids=[], at=NOW, by=BY)),
        ("targetDate", lambda plan: plan.set_goal(
            text="Bo hemma", target_date="2027-01-01", need_ids=[], at=NOW, by=BY)),
        ("start", lambda plan: plan.schedule_meeting(
            meeting={"start": None, "end": NOW, "location": "Här"}, at=NOW, by=BY)),
        ("end", lambda plan: plan.schedule_meeting(
            meeting={"start": NOW, "end": "tomorrow", "location": "Här"}, at=NOW, by=BY)),
        ("date", lambda plan: plan.set_follow_up(follow_up_date=None, at=NOW, by=BY)),
        ("date", lambda plan: plan.set_follow_up(follow_up_date=NOW, at=NOW, by=BY)),
        ("text", lambda plan: plan.assign_intervention(
            intervention=intervention(text=None), at=NOW, by=BY)),
        ("text", lambda plan: plan.report_deviation(
            organization=REGION, intervention_id=None, text=None, at=NOW, by=BY)),
        ("organization", lambda plan: plan.accept_invitation(
            organization=None, unit=None, contact=None, at=NOW, by=BY)),
        ("contact", lambda plan: plan.accept_invitation(
            organization=MUNICIPALITY, unit=None, contact="\x00", at=NOW, by=BY)),
        ("reason", lambda plan: plan.reject_changes(
            rejected_by="person", meeting_id=None, reason="\x00", at=NOW, by=BY)),
    ],
)  # fmt: skip
def test_commands_refuse_missing_or_malformed_values_before_any_event(element, command):
    """A route that forgot to validate still cannot store an event no reader can use."""
    plan = ready()
    version = plan.version
    with pytest.raises(InvalidCommand) as refusal:
        command(plan)
    assert refusal.value.element == element
    assert plan.version == version and len(plan.collect_events()) == version


def test_a_plan_is_not_started_without_its_subject_or_organisation():
    with pytest.raises(InvalidCommand) as refusal:
        Plan(
            subject={"system": "x", "value": None},
            starting_organization=REGION,
            starting_organization_kind="region",
            initiative="region-unit",
            title=None,
            description=None,
            started_at=NOW,
            started_by=BY,
        )
    assert refusal.value.element == "subject.value"


def test_events_stored_with_nulls_before_the_commands_refused_them_still_replay():
    plan = started()
    # The events as a route that did not validate stored them, triggered past the commands.
    plan._organization_invited(hsa_id=None, kind="municipality", name=None, at=NOW, by=BY)
    plan._need_recorded(need_id="need-1", text=None, wishes=None, at=NOW, by=BY)
    plan._follow_up_date_set(follow_up_date=None, at=NOW, by=BY)
    replayed = None
    for stored in plan.collect_events():
        replayed = stored.mutate(replayed)
    assert None in replayed.organizations and replayed.needs["need-1"].text is None
