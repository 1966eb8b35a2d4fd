"""The plan's state is typed: parts are frozen values built from the unchanged event payloads."""

import dataclasses
from copy import deepcopy
from datetime import date

import pytest

from services.sip.fhir_mapping import care_team_to_fhir, goal_to_fhir, plan_to_fhir
from services.sip.parts import CostAllocation, Goal, Intervention
from tests.test_sip_domain import BY, MUNICIPALITY, NOW, REGION, intervention, ready


def full_plan():
    plan = ready()
    goal = plan.set_goal(
        text="Bo hemma", target_date=date(2027, 6, 1), need_ids=["need-1"], at=NOW, by=BY
    )
    plan.revise_goal(
        goal_id=goal, text="Bo kvar hemma", target_date=None, reason="Tydligare", at=NOW, by=BY
    )
    plan.propose_cost_allocation(
        intervention_id="intervention-1",
        shares=[],
        period_start=date(2027, 1, 1),
        period_end=None,
        at=NOW,
        by=BY,
        split_unclear=True,
    )
    plan.agree_cost_allocation(allocation_id="cost-1", organization=MUNICIPALITY, at=NOW, by=BY)
    return plan


def test_parts_are_typed_values():
    plan = full_plan()
    assert isinstance(plan.interventions["intervention-1"], Intervention)
    assert isinstance(plan.goals["goal-1"], Goal)
    assert isinstance(plan.cost_allocations["cost-1"], CostAllocation)
    assert plan.goals["goal-1"].revisions[0].text == "Bo hemma"
    assert plan.overall_responsible == REGION


def test_a_misspelt_attribute_fails_instead_of_reading_none():
    plan = full_plan()
    with pytest.raises(AttributeError):
        plan.interventions["intervention-1"].responsible_organisation  # noqa: B018
    with pytest.raises(TypeError):
        plan.goals["goal-1"]["text"]


def test_parts_are_immutable():
    plan = full_plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.goals["goal-1"].text = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.cost_allocations["cost-1"].in_force = True  # type: ignore[misc]
    assert isinstance(plan.cost_allocations["cost-1"].agreed_by, tuple)


def test_event_payloads_are_the_plain_dicts_they_always_were():
    plan = ready()
    plan.propose_cost_allocation(
        intervention_id="intervention-1",
        shares=[],
        period_start=date(2027, 1, 1),
        period_end=None,
        at=NOW,
        by=BY,
        split_unclear=True,
    )
    plan.agree_cost_allocation(allocation_id="cost-1", organization=MUNICIPALITY, at=NOW, by=BY)
    events = {type(e).__name__: e for e in plan.collect_events()}
    # Its description in a field of its own (the author's), the structure in the dict.
    assigned = events["InterventionAssigned"]
    assert {**assigned.intervention, "text": assigned.text} == intervention() | {
        "id": "intervention-1",
        "status": "planned",
    }
    assert "text" not in assigned.intervention
    # A later change never reaches back into an earlier event's payload.
    assert events["CostAllocationProposed"].allocation == {
        "id": "cost-1",
        "intervention_id": "intervention-1",
        "shares": [
            {"principal": "region", "organization": REGION, "percent": 33.33, "amount_sek": None},
            {
                "principal": "municipality",
                "organization": MUNICIPALITY,
                "percent": 66.67,
                "amount_sek": None,
            },
        ],
        "period_start": date(2027, 1, 1),
        "period_end": None,
        "agreed_by": [REGION],  # the region proposed the default split: it found it unclear
        "in_force": False,
        "split_unclear_by": [REGION],
    }


def test_replaying_the_events_gives_the_same_resources():
    plan = full_plan()
    events = plan.collect_events()
    replayed = None
    for domain_event in events:
        replayed = domain_event.mutate(replayed)
    assert replayed is not None
    for render in (plan_to_fhir, care_team_to_fhir):
        assert render(replayed) == render(plan)
    assert goal_to_fhir(replayed, "goal-1") == goal_to_fhir(plan, "goal-1")
    # The library deep-copies aggregates for each version of the history.
    assert plan_to_fhir(deepcopy(replayed)) == plan_to_fhir(plan)
