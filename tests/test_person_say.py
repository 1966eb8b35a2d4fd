"""The person's say in their plan, over HTTP: they record needs and goals in their own words,
and what others change in an active plan stays a proposal, marked as such, until the person
approves it or a meeting they attended does."""

from __future__ import annotations

from typing import Any

from contracts.canonical import EXT_PENDING_APPROVAL
from services.common.disclosure import PERSON, custodian_of
from tests.fhir_data import (
    REGION,
    active_plan,
    new_personnummer,
    run,
)
from tests.fhir_data import created_or_ok as ok


def marker(element: dict[str, Any]) -> dict[str, Any] | None:
    found = [e for e in element.get("extension", []) if e["url"] == EXT_PENDING_APPROVAL]
    return {p["url"]: p.get("valueString") for p in found[0]["extension"]} if found else None


def patient_of(system: Any, personnummer: str) -> Any:
    return system.as_caller("patient", organization=None, patient=personnummer).sip


def test_a_change_to_an_active_plan_is_a_proposal_until_the_person_approves(system):
    plan_id, personnummer = active_plan(system)
    sip = system.sip
    ok(run(sip, plan_id, "record-need", text="Sömnproblem"))  # need-2
    ok(run(sip, plan_id, "set-goal", text="Sova hela natten", need="need-2"))  # goal-2
    ok(
        run(
            sip,
            plan_id,
            "revise-goal",
            goal="goal-1",
            text="Handla två gånger i veckan",
            reason="Mer konkret",
        )
    )
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    needs = {c["id"]: c for c in plan["contained"]}
    assert marker(needs["need-1"]) is None  # approved at activation
    assert marker(needs["need-2"]) == {"change": "need-2 recorded"}
    new_goal = ok(sip.get(f"/fhir/Goal/{plan_id}-goal-2"))
    assert new_goal["lifecycleStatus"] == "proposed" and marker(new_goal)
    revised = ok(sip.get(f"/fhir/Goal/{plan_id}-goal-1"))
    assert revised["lifecycleStatus"] == "active"
    assert revised["description"]["text"] == "Handla själv"  # the approved words stay
    assert marker(revised) == {
        "change": "goal-1 revised",
        "text": "Handla två gånger i veckan",
        "reason": "Mer konkret",
    }

    # Staff cannot approve in the person's name.
    assert run(sip, plan_id, "approve-changes", approvedBy="person").status_code == 403
    ok(run(patient_of(system, personnummer), plan_id, "approve-changes"))
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert all(marker(c) is None for c in plan["contained"])
    assert marker(plan) is None
    assert ok(sip.get(f"/fhir/Goal/{plan_id}-goal-2"))["lifecycleStatus"] == "active"
    revised = ok(sip.get(f"/fhir/Goal/{plan_id}-goal-1"))
    assert revised["description"]["text"] == "Handla två gånger i veckan"
    assert marker(revised) is None and "Handla själv" in revised["note"][0]["text"]


def test_an_activity_and_a_participant_added_to_an_active_plan_are_marked_proposed(system):
    plan_id, _ = active_plan(system)
    sip = system.sip
    ok(
        run(
            sip,
            plan_id,
            "assign-intervention",
            text="Sömnskola",
            kind="treatment",
            need="need-1",
            performerOrganization=REGION,
            responsiblePrincipal="region",
            responsibleOrganization=REGION,
        )
    )
    ok(run(sip, plan_id, "add-participant", kind="relative", name="Mamma", personAgrees=True))
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    activities = [a for a in plan["activity"] if "detail" in a]
    assert [marker(a) for a in activities[:2]] == [None, {"change": "intervention-2 assigned"}]
    team = ok(sip.get(f"/fhir/CareTeam/{plan_id}-team"))
    marked = [m for m in team["participant"] if marker(m)]
    assert [m["member"]["display"] for m in marked] == ["Mamma"]


def test_a_status_change_stays_proposed_and_the_approved_status_shows(system):
    plan_id, personnummer = active_plan(system)
    sip = system.sip
    ok(run(sip, plan_id, "set-intervention-status", intervention="intervention-1",
           status="stopped", reason="Flyttat"))  # fmt: skip
    activity = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))["activity"][0]
    assert activity["detail"]["status"] == "not-started"  # as approved
    proposal = next(e for e in activity["extension"] if e["url"] == EXT_PENDING_APPROVAL)
    assert {"url": "status", "valueCode": "stopped"} in proposal["extension"]
    ok(run(patient_of(system, personnummer), plan_id, "approve-changes"))
    activity = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))["activity"][0]
    assert activity["detail"]["status"] == "stopped" and marker(activity) is None
    assert activity["detail"]["statusReason"] == {"text": "Flyttat"}


def test_a_meeting_approves_only_if_the_person_attended(system):
    plan_id, _ = active_plan(system)
    sip = system.sip
    ok(run(sip, plan_id, "record-need", text="Sömnproblem"))
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
    before = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]
    without_person = run(
        sip,
        plan_id,
        "record-meeting",
        meeting="meeting-1",
        attendee=["participant-2", "Tolvan"],
        approvedChanges=True,
    )
    assert without_person.status_code == 409, without_person.text
    assert without_person.json()["issue"][0]["details"]["text"] == (
        "meeting-approval-needs-the-person"
    )
    assert ok(sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"] == before
    # Held without the person: its approval cannot be recorded afterwards either.
    ok(run(sip, plan_id, "record-meeting", meeting="meeting-1", attendee="participant-2"))
    later = run(sip, plan_id, "approve-changes", approvedBy="meeting", meeting="meeting-1")
    assert later.status_code == 409, later.text
    assert marker(ok(sip.get(f"/fhir/CarePlan/{plan_id}")))  # still proposed
    # With the person there (named by participant id), the meeting approves.
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
    approved = ok(
        run(
            sip,
            plan_id,
            "record-meeting",
            meeting="meeting-2",
            attendee=["participant-1", "participant-2"],
            approvedChanges=True,
        )
    )
    assert marker(approved) is None
    assert all(marker(c) is None for c in approved["contained"])


def test_the_person_records_needs_and_goals_in_their_own_words(system):
    plan_id, personnummer = active_plan(system)
    person = patient_of(system, personnummer)
    ok(run(person, plan_id, "record-need", text="Jag vill ha samma personal", wishes="Kvällar"))
    ok(run(person, plan_id, "set-goal", text="Känna mig trygg hemma", need="need-2"))
    plan = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))
    need = next(c for c in plan["contained"] if c["id"] == "need-2")
    assert need["code"]["text"] == "Jag vill ha samma personal"
    assert need["note"][0]["text"] == "Önskemål: Kvällar"
    assert marker(need) is None  # the person's own words need no one's approval
    goal = ok(system.sip.get(f"/fhir/Goal/{plan_id}-goal-2"))
    assert goal["lifecycleStatus"] == "active" and marker(goal) is None
    # Recorded by the person: the person is the custodian of these entries.
    provenance = ok(system.sip.get("/fhir/Provenance", params={"target": f"CarePlan/{plan_id}"}))
    authors = [p["resource"]["agent"][0]["role"][0]["text"] for p in provenance["entry"]]
    assert authors[-2:] == ["patient", "patient"]
    assert custodian_of({"role": authors[-1]}) == PERSON
    # Not someone else's plan, and not what staff decide.
    stranger = patient_of(system, new_personnummer())
    assert run(stranger, plan_id, "record-need", text="x").status_code == 404
    refused = run(
        person,
        plan_id,
        "assign-intervention",
        text="x",
        kind="support",
        need="need-1",
        performerOrganization=REGION,
        responsiblePrincipal="region",
        responsibleOrganization=REGION,
    )
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["text"] == "role-matrix-assign-intervention"


def test_the_person_may_close_only_by_withdrawing(system):
    plan_id, personnummer = active_plan(system)
    person = patient_of(system, personnummer)
    refused = run(person, plan_id, "close", reason="goals-reached")
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["text"] == "person-withdraws"
    assert ok(run(person, plan_id, "close", reason="person-withdrew"))["status"] == "revoked"
