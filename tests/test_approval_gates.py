"""What waits for the person's approval on an active plan, over HTTP: an organisation invited
by staff does not take part (it sees nothing and may do nothing) until the person approves, a
transfer of the overall responsibility is not in force (the holder keeps the say over closing),
and a goal's assessment is not the goal's outcome; each is marked as proposed meanwhile. In a
draft, an invitation takes effect at once (prepare_for_activation relies on it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.canonical import EXT_OVERALL_RESPONSIBILITY, EXT_PENDING_APPROVAL
from services.common.disclosure import PERSON, Disclosure
from services.sip.domain import Plan
from services.sip.fhir_mapping import care_team_to_fhir, plan_to_fhir
from services.sip.redaction import redact, withheld_of
from tests.fhir_data import (
    MUNICIPALITY,
    REGION,
    REGION_NEED,
    run,
    whole_feed,
)
from tests.fhir_data import active_plan as shared_active_plan
from tests.fhir_data import created_or_ok as ok

SCHOOL = "SE2120000357-S0042"
SCHOOL_NEED = "Läxhjälp efter skolan"
AT = datetime(2026, 11, 2, tzinfo=UTC)
BY_REGION = {"subject": "anna", "role": "coordinator", "organization": REGION}


def rule_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["text"]


def proposals(element: dict[str, Any]) -> list[tuple[str, Any]]:
    """The pending-approval extension's parts as (name, value): a reference as its HSA-id."""
    found = [e for e in element.get("extension", []) if e["url"] == EXT_PENDING_APPROVAL]
    parts = found[0]["extension"] if found else []
    return [
        (
            part["url"],
            part["valueReference"]["identifier"]["value"]
            if "valueReference" in part
            else next(v for k, v in part.items() if k.startswith("value")),
        )
        for part in parts
    ]


def overall_responsible(plan: dict[str, Any]) -> str:
    held = next(e for e in plan["extension"] if e["url"] == EXT_OVERALL_RESPONSIBILITY)
    organization = next(p for p in held["extension"] if p["url"] == "organization")
    return organization["valueReference"]["identifier"]["value"]


def active_plan(system: Any) -> tuple[str, Any]:
    """An active plan whose person consented to disclosure between the region, the
    municipality and the school (tests/fhir_data.active_plan); returns the person's client."""
    plan_id, personnummer = shared_active_plan(system, (REGION, MUNICIPALITY, SCHOOL))
    return plan_id, system.as_caller("patient", organization=None, patient=personnummer).sip


def school_takes_no_part(school: Any, school_system: Any, plan_id: str) -> None:
    """Nothing of the plan reaches the school, and nothing it tries is written."""
    for path in (f"CarePlan/{plan_id}", f"CareTeam/{plan_id}-team", f"Goal/{plan_id}-goal-1"):
        assert school.get(f"/fhir/{path}").status_code == 404, path
    assert school.get(f"/fhir/CarePlan/{plan_id}/_history").status_code == 404
    assert plan_id not in school.get("/fhir/CarePlan").text  # nor found by search
    events, _ = whole_feed(school_system, type="Plan")  # nor through its record system's feed
    assert [e for e in events if e["aggregate_id"] == plan_id] == []
    attempts = [
        (school, "record-need", {"text": SCHOOL_NEED}),
        (school, "report-deviation", {"intervention": "intervention-1", "text": "Uteblev"}),
        (school, "set-goal", {"text": "Klara skolan", "need": "need-1"}),
        (school_system, "record-need", {"text": SCHOOL_NEED}),
        (school, "approve-changes", {"approvedBy": "meeting", "meeting": "meeting-1"}),
    ]
    for client, operation, values in attempts:
        refused = run(client, plan_id, operation, **values)
        assert refused.status_code in (403, 404), (operation, refused.text)
        assert SCHOOL_NEED not in refused.text and REGION_NEED not in refused.text


def test_an_organisation_invited_to_an_active_plan_takes_part_only_once_the_person_approves(
    system,
):
    plan_id, person = active_plan(system)
    sip = system.sip
    school = system.as_caller(organization=SCHOOL).sip
    school_system = system.as_caller("integration", organization=SCHOOL).sip
    ok(run(sip, plan_id, "invite-organization", organization=SCHOOL, kind="other", name="Skolan"))
    version = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]
    school_takes_no_part(school, school_system, plan_id)
    assert ok(sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"] == version

    # Those who see the plan see the school proposed, not taking part.
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert ("organization", SCHOOL) in proposals(plan)
    assert ("change", f"organisation {SCHOOL} invited") in proposals(plan)
    team = ok(sip.get(f"/fhir/CareTeam/{plan_id}-team"))
    members = {
        m["member"]["identifier"]["value"]: m
        for m in team["participant"]
        if m["member"].get("type") == "Organization"
    }
    assert proposals(members[SCHOOL]) == [("change", f"organisation {SCHOOL} invited")]
    assert proposals(members[MUNICIPALITY]) == []
    # Not invited twice, and no one may make it perform what it does not yet take part in.
    again = run(sip, plan_id, "invite-organization", organization=SCHOOL, kind="other")
    assert again.status_code == 409 and rule_of(again) == "organization-invited-once"
    performing = run(
        sip,
        plan_id,
        "assign-intervention",
        text="Läxhjälp",
        kind="support",
        need="need-1",
        performerOrganization=SCHOOL,
        responsiblePrincipal="other",
    )
    assert performing.status_code == 409, performing.text
    assert rule_of(performing) == "intervention-organization-takes-part"

    ok(run(person, plan_id, "approve-changes"))
    plan = ok(school.get(f"/fhir/CarePlan/{plan_id}"))
    assert REGION_NEED in str(plan)  # the frame, and the region's entries by the consent
    assert proposals(plan) == []
    team = ok(school.get(f"/fhir/CareTeam/{plan_id}-team"))
    assert all(proposals(m) == [] for m in team["participant"])
    ok(run(school, plan_id, "record-need", text=SCHOOL_NEED))
    events, _ = whole_feed(school_system, type="Plan")
    assert any(e["aggregate_id"] == plan_id for e in events)  # its record system follows it
    assert SCHOOL_NEED in sip.get(f"/fhir/CarePlan/{plan_id}").text


def test_a_meeting_without_the_person_leaves_the_invited_organisation_out(system):
    plan_id, _ = active_plan(system)
    sip = system.sip
    school = system.as_caller(organization=SCHOOL).sip
    ok(run(sip, plan_id, "invite-organization", organization=SCHOOL, kind="other"))
    ok(
        run(
            sip,
            plan_id,
            "schedule-meeting",
            start="2027-01-10T09:00:00+01:00",
            end="2027-01-10T10:00:00+01:00",
            location="Vårdcentralen",
        )
    )
    refused = run(
        sip,
        plan_id,
        "record-meeting",
        meeting="meeting-1",
        attendee="participant-2",
        approvedChanges=True,
    )
    assert refused.status_code == 409 and rule_of(refused) == "meeting-approval-needs-the-person"
    ok(run(sip, plan_id, "record-meeting", meeting="meeting-1", attendee="participant-2"))
    later = run(sip, plan_id, "approve-changes", approvedBy="meeting", meeting="meeting-1")
    assert later.status_code == 409 and rule_of(later) == "meeting-approval-needs-the-person"
    school_takes_no_part(school, system.as_caller("integration", organization=SCHOOL).sip, plan_id)
    assert ("organization", SCHOOL) in proposals(ok(sip.get(f"/fhir/CarePlan/{plan_id}")))
    # A meeting the person attended approves: the school takes part from then on.
    ok(
        run(
            sip,
            plan_id,
            "schedule-meeting",
            start="2027-01-20T09:00:00+01:00",
            end="2027-01-20T10:00:00+01:00",
            location="Vårdcentralen",
        )
    )
    ok(
        run(
            sip,
            plan_id,
            "record-meeting",
            meeting="meeting-2",
            attendee=["participant-1", "participant-2"],
            approvedChanges=True,
        )
    )
    assert REGION_NEED in str(ok(school.get(f"/fhir/CarePlan/{plan_id}")))


def test_a_transfer_of_overall_responsibility_is_in_force_only_once_the_person_approves(system):
    plan_id, person = active_plan(system)
    sip = system.sip
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    ok(
        run(
            sip,
            plan_id,
            "assign-overall-responsibility",
            organization=MUNICIPALITY,
            reason="Insatserna är kommunens",
        )
    )
    plan = ok(municipality.get(f"/fhir/CarePlan/{plan_id}"))
    assert overall_responsible(plan) == REGION
    assert ("overallResponsibility", MUNICIPALITY) in proposals(plan)
    team = ok(municipality.get(f"/fhir/CareTeam/{plan_id}-team"))
    assert team["managingOrganization"][0]["identifier"]["value"] == REGION
    assert ("overallResponsibility", MUNICIPALITY) in proposals(team)
    again = run(
        sip, plan_id, "assign-overall-responsibility", organization=MUNICIPALITY, reason="Igen"
    )
    assert again.status_code == 409 and rule_of(again) == "overall-responsibility-changes"
    # The proposed holder may not close; the holder still may (shown on a second plan below).
    closing = run(municipality, plan_id, "close", reason="goals-reached")
    assert closing.status_code == 403 and rule_of(closing) == "overall-responsible"

    ok(run(person, plan_id, "approve-changes"))
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert overall_responsible(plan) == MUNICIPALITY and proposals(plan) == []
    closing = run(sip, plan_id, "close", reason="goals-reached")
    assert closing.status_code == 403 and rule_of(closing) == "overall-responsible"
    assert ok(run(municipality, plan_id, "close", reason="goals-reached"))["status"] == "completed"

    other_id, _ = active_plan(system)
    ok(run(sip, other_id, "assign-overall-responsibility", organization=MUNICIPALITY, reason="x"))
    assert ok(run(sip, other_id, "close", reason="goals-reached"))["status"] == "completed"


def test_a_goal_assessment_on_an_active_plan_waits_for_the_person(system):
    plan_id, person = active_plan(system)
    sip = system.sip
    ok(run(sip, plan_id, "assess-goal", goal="goal-1", outcome="achieved", note="Handlar själv"))
    goal = ok(sip.get(f"/fhir/Goal/{plan_id}-goal-1"))
    assert goal["lifecycleStatus"] == "active"
    assert goal["achievementStatus"]["coding"][0]["code"] == "in-progress"
    assert "note" not in goal
    assert proposals(goal) == [
        ("change", "goal-1 assessed achieved"),
        ("outcome", "achieved"),
        ("note", "Handlar själv"),
    ]
    ok(run(person, plan_id, "approve-changes"))
    goal = ok(sip.get(f"/fhir/Goal/{plan_id}-goal-1"))
    assert goal["lifecycleStatus"] == "completed"
    assert goal["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert goal["note"] == [{"text": "Handlar själv"}] and proposals(goal) == []


def draft_plan() -> Plan:
    """A plan with the region and the municipality taking part and a need of the region's."""
    plan = Plan(
        subject={"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "198001019802"},
        starting_organization=REGION,
        starting_organization_kind="region",
        initiative="person",
        title=None,
        description=None,
        started_at=AT,
        started_by=BY_REGION,
    )
    plan.invite_organization(
        hsa_id=MUNICIPALITY, kind="municipality", name=None, at=AT, by=BY_REGION
    )
    plan.record_need(text=REGION_NEED, wishes=None, at=AT, by=BY_REGION)
    return plan


def activated(plan: Plan) -> None:
    """As $activate records it (its checks, asked of the consent service, are not the point)."""
    plan._activated(consents=["consent-1"], activated_at=AT, activated_by=BY_REGION)


def test_a_proposed_organisation_is_marked_even_where_its_invitation_is_withheld():
    """Who is proposed to take part is the plan's frame: a reader who may not see the
    inviter's entries (so not the invitation itself) still sees the school marked proposed."""
    plan = draft_plan()
    activated(plan)
    plan.invite_organization(hsa_id=SCHOOL, kind="other", name="Skolan", at=AT, by=BY_REGION)
    assert not plan.takes_part(SCHOOL) and plan.kind_of(SCHOOL) is None
    as_municipality = redact(plan, Disclosure(custodians=frozenset({MUNICIPALITY, PERSON})))
    assert as_municipality.pending_changes == []  # the region's invitation is withheld
    team = care_team_to_fhir(as_municipality)
    school = next(m for m in team["participant"] if m["member"]["identifier"]["value"] == SCHOOL)
    assert proposals(school) == [("change", f"organisation {SCHOOL} invited")]
    assert proposals(plan_to_fhir(as_municipality)) == [("organization", SCHOOL)]


def test_a_proposed_assessment_is_its_assessors_entry_and_withheld_without_consent():
    """The outcome and note an organisation proposes are its entry: a reader who may not see
    that organisation's entries sees neither (the change itself is counted as withheld)."""
    plan = draft_plan()
    municipality = {"role": "coordinator", "organization": MUNICIPALITY}
    plan.set_goal(text="Handla själv", target_date=None, need_ids=["need-1"], at=AT, by=BY_REGION)
    activated(plan)
    plan.assess_goal(
        goal_id="goal-1", outcome="achieved", note="Kommunens bedömning", at=AT, by=municipality
    )
    assert plan.goals["goal-1"].outcome is None  # not in force until the person approves
    as_region = redact(plan, Disclosure(custodians=frozenset({REGION, PERSON})))
    assert as_region.goals["goal-1"].proposed_assessment is None
    assert (MUNICIPALITY, "change") in {(w.custodian, w.kind) for w in withheld_of(as_region)}
    as_municipality = redact(plan, Disclosure(custodians=frozenset({MUNICIPALITY, PERSON})))
    assert "goal-1" not in as_municipality.goals  # the region's goal, without consent
    whole = plan.goals["goal-1"].proposed_assessment
    assert whole is not None and whole.note == "Kommunens bedömning"


def test_a_stored_transfer_to_an_organisation_that_now_replays_as_proposed_still_replays():
    """Before invitations waited for approval, an organisation invited to an active plan could
    be given the overall responsibility at once. Such stored events replay: the transfer is
    held as a proposal naming it, and both come into force with the person's approval."""
    plan = draft_plan()
    activated(plan)
    other = "SE2120000357-K0002"
    plan.invite_organization(hsa_id=other, kind="municipality", name=None, at=AT, by=BY_REGION)
    # As stored then: no command today writes this (the organisation does not take part yet).
    plan._overall_responsibility_assigned(organization=other, reason="Flytt", at=AT, by=BY_REGION)
    replayed = None
    for stored in plan.collect_events():
        replayed = stored.mutate(replayed)
    assert replayed is not None and replayed.overall_responsibility is None
    assert replayed.proposed_overall_responsibility.organization == other
    approved_at = datetime(2026, 11, 9, tzinfo=UTC)
    replayed.approve_changes(
        approved_by="person", meeting_id=None, at=approved_at, by={"role": "patient"}
    )
    assert replayed.overall_responsible == other and replayed.kind_of(other) == "municipality"
    assert replayed.overall_responsibility.since == approved_at  # in force from the approval
