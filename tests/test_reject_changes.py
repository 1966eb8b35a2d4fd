"""The person says no to the changes waiting for their approval (`$reject-changes`), over HTTP
on both backends: everything proposed is dropped and the plan stays as the person approved it
(an entry that was only a proposal is gone from every view, a proposed organisation never
takes part, a transfer leaves the holder), the CarePlan notes the rejection, no id is given
twice; only the person, or staff recording a meeting the person attended, may reject, and a
refusal writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from services.common.disclosure import PERSON, Disclosure
from services.sip.domain import Plan
from services.sip.fhir_mapping import plan_to_fhir
from services.sip.projections import plan_index, plan_organizations
from services.sip.redaction import redact, withheld_of
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    new_personnummer,
    parameters,
    run,
)
from tests.fhir_data import active_plan as shared_active_plan
from tests.fhir_data import created_or_ok as ok
from tests.test_approval_gates import overall_responsible, proposals

SCHOOL = "SE2120000357-S0099"
SLEEP_SCHOOL = "Sömnskola"


def rule_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["text"]


def active_plan(system: Any) -> tuple[str, Any]:
    """tests/fhir_data.active_plan, the person's consent covering a school too: (plan id, the
    person's client)."""
    plan_id, personnummer = shared_active_plan(system, (REGION, MUNICIPALITY, SCHOOL))
    return plan_id, system.as_caller("patient", organization=None, patient=personnummer).sip


def version(system: Any, plan_id: str) -> str:
    return ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]


def content(resource: dict[str, Any]) -> dict[str, Any]:
    """What a reader sees of the plan's content: not who changed it last, when, or its notes."""
    kept = {k: v for k, v in resource.items() if k not in ("meta", "note", "extension")}
    kept["extension"] = [
        e for e in resource.get("extension", []) if not e["url"].endswith("/recorded-by")
    ]
    return kept


def notes(plan: dict[str, Any]) -> list[str]:
    return [note["text"] for note in plan.get("note", [])]


def propose_sleep_school(client: Any, plan_id: str) -> None:
    ok(
        run(
            client,
            plan_id,
            "assign-intervention",
            text=SLEEP_SCHOOL,
            kind="treatment",
            need="need-1",
            goal="goal-1",
            performerOrganization=REGION,
            responsiblePrincipal="region",
            responsibleOrganization=REGION,
        )
    )


def test_a_rejected_intervention_is_gone_and_the_approved_plan_stays(system):
    plan_id, person = active_plan(system)
    sip = system.sip
    readers = {
        "region": sip,
        "municipality": system.as_caller(organization=MUNICIPALITY).sip,
        "person": person,
    }
    paths = (f"CarePlan/{plan_id}", f"CareTeam/{plan_id}-team", f"Goal/{plan_id}-goal-1")
    approved = {
        (who, path): content(ok(client.get(f"/fhir/{path}")))
        for who, client in readers.items()
        for path in paths
    }
    propose_sleep_school(sip, plan_id)
    proposed = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert ("change", "intervention-2 assigned") in proposals(proposed)
    assert SLEEP_SCHOOL in str(proposed)

    rejected = ok(run(person, plan_id, "reject-changes", reason="Jag sover bra nu"))
    assert rejected["resourceType"] == "CarePlan" and SLEEP_SCHOOL not in str(rejected)
    for (who, path), before in approved.items():
        now = ok(readers[who].get(f"/fhir/{path}"))
        assert content(now) == before, (who, path)
        assert SLEEP_SCHOOL not in str(now) and proposals(now) == [], (who, path)
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    interventions = [a["id"] for a in plan["activity"] if a.get("id", "").startswith("inter")]
    assert interventions == ["intervention-1"]
    assert notes(plan)[-1] == (
        "Ändringar avböjda av personen: intervention-2 assigned — Skäl: Jag sover bra nu"
    )
    assert plan["meta"]["versionId"] == str(int(proposed["meta"]["versionId"]) + 1)
    # Who rejected it is the version's author; earlier versions still show the proposal.
    provenance = ok(sip.get("/fhir/Provenance", params={"target": f"CarePlan/{plan_id}"}))
    assert provenance["entry"][-1]["resource"]["agent"][0]["role"][0]["text"] == "patient"
    earlier = ok(sip.get(f"/fhir/CarePlan/{plan_id}/_history/{proposed['meta']['versionId']}"))
    assert SLEEP_SCHOOL in str(earlier)


def test_a_rejected_organisation_never_takes_part(system):
    plan_id, person = active_plan(system)
    sip = system.sip
    school = system.as_caller(organization=SCHOOL).sip
    ok(run(sip, plan_id, "invite-organization", organization=SCHOOL, kind="other", name="Skolan"))
    assert ("organization", SCHOOL) in proposals(ok(sip.get(f"/fhir/CarePlan/{plan_id}")))

    ok(run(person, plan_id, "reject-changes"))
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert notes(plan)[-1] == f"Ändringar avböjda av personen: organisation {SCHOOL} invited"
    assert proposals(plan) == [] and SCHOOL not in str(content(plan))
    team = ok(sip.get(f"/fhir/CareTeam/{plan_id}-team"))
    assert SCHOOL not in str(team)
    for path in (f"CarePlan/{plan_id}", f"CareTeam/{plan_id}-team", f"CarePlan/{plan_id}/_history"):
        assert school.get(f"/fhir/{path}").status_code == 404, path
    for operation, values in (
        ("accept-invitation", {}),
        ("record-need", {"text": "Läxhjälp"}),
        ("reject-changes", {"rejectedBy": "meeting", "meeting": "meeting-1"}),
    ):
        refused = run(school, plan_id, operation, **values)
        assert refused.status_code == 404, (operation, refused.text)
    found = ok(school.get("/fhir/CarePlan", params={"invitation-pending": SCHOOL}))
    assert plan_id not in str(found)
    index = system.sip_app.state.index
    index.catch_up()
    with index.engine.connect() as connection:
        held = connection.execute(
            select(plan_organizations.c.hsa_id).where(plan_organizations.c.plan_id == plan_id)
        )
        assert SCHOOL not in {row.hsa_id for row in held}

    # Invited again, it is a new proposal; approved, it takes part and its invitation waits.
    ok(run(sip, plan_id, "invite-organization", organization=SCHOOL, kind="other"))
    ok(run(person, plan_id, "approve-changes"))
    found = ok(school.get("/fhir/CarePlan", params={"invitation-pending": SCHOOL}))
    assert plan_id in [entry["resource"]["id"] for entry in found["entry"]]


def test_a_rejected_transfer_of_the_overall_responsibility_leaves_the_holder(system):
    plan_id, person = active_plan(system)
    sip = system.sip
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    ok(run(sip, plan_id, "assign-overall-responsibility", organization=MUNICIPALITY,
           reason="Insatserna är kommunens"))  # fmt: skip
    ok(run(person, plan_id, "reject-changes", reason="Regionen känner mig"))
    plan = ok(municipality.get(f"/fhir/CarePlan/{plan_id}"))
    assert overall_responsible(plan) == REGION and proposals(plan) == []
    team = ok(municipality.get(f"/fhir/CareTeam/{plan_id}-team"))
    assert team["managingOrganization"][0]["identifier"]["value"] == REGION
    assert proposals(team) == []
    closing = run(municipality, plan_id, "close", reason="goals-reached")
    assert closing.status_code == 403 and rule_of(closing) == "overall-responsible"
    # Nothing is left waiting: the transfer may be proposed again, and approved.
    ok(run(sip, plan_id, "assign-overall-responsibility", organization=MUNICIPALITY, reason="x"))
    ok(run(person, plan_id, "approve-changes"))
    assert overall_responsible(ok(sip.get(f"/fhir/CarePlan/{plan_id}"))) == MUNICIPALITY


def test_proposed_revisions_assessments_and_statuses_are_not_made(system):
    plan_id, person = active_plan(system)
    sip = system.sip
    goal_path, plan_path = f"/fhir/Goal/{plan_id}-goal-1", f"/fhir/CarePlan/{plan_id}"
    goal_before, plan_before = content(ok(sip.get(goal_path))), content(ok(sip.get(plan_path)))
    ok(run(sip, plan_id, "revise-goal", goal="goal-1", text="Handla varje dag", reason="Mer"))
    ok(run(sip, plan_id, "assess-goal", goal="goal-1", outcome="achieved", note="Klart"))
    ok(run(sip, plan_id, "set-intervention-status", intervention="intervention-1",
           status="stopped", reason="Flyttat"))  # fmt: skip
    ok(run(sip, plan_id, "set-follow-up", date="2027-09-01"))
    ok(run(person, plan_id, "reject-changes"))
    assert content(ok(sip.get(goal_path))) == goal_before
    assert content(ok(sip.get(plan_path))) == plan_before  # the follow-up date given back too
    assert notes(ok(sip.get(plan_path)))[-1] == (
        "Ändringar avböjda av personen: goal-1 revised; goal-1 assessed achieved; "
        "intervention-1 stopped; follow-up on 2027-09-01"
    )


def test_after_a_rejection_a_new_proposal_gets_a_new_id_and_can_be_approved(system):
    plan_id, person = active_plan(system)
    sip = system.sip
    ok(run(sip, plan_id, "record-need", text="Sömnproblem"))  # need-2
    ok(run(sip, plan_id, "set-goal", text="Sova hela natten", need="need-2"))  # goal-2
    assert ok(sip.get(f"/fhir/Goal/{plan_id}-goal-2"))["lifecycleStatus"] == "proposed"
    ok(run(person, plan_id, "reject-changes"))
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert [need["id"] for need in plan["contained"]] == ["need-1"]
    assert sip.get(f"/fhir/Goal/{plan_id}-goal-2").status_code == 404
    assert ok(sip.get(f"/fhir/Goal/{plan_id}-goal-2/_history"))["total"] >= 1  # as it was

    ok(run(sip, plan_id, "record-need", text="Oro på nätterna"))
    ok(run(sip, plan_id, "set-goal", text="Känna mig lugn", need="need-3"))
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert [need["id"] for need in plan["contained"]] == ["need-1", "need-3"]
    assert [goal["reference"].rsplit("-", 2)[-2:] for goal in plan["goal"]] == [
        ["goal", "1"],
        ["goal", "3"],
    ]
    assert sip.get(f"/fhir/Goal/{plan_id}-goal-2").status_code == 404  # never given again
    ok(run(person, plan_id, "approve-changes"))
    plan = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert proposals(plan) == [] and "Oro på nätterna" in str(plan)
    assert ok(sip.get(f"/fhir/Goal/{plan_id}-goal-3"))["lifecycleStatus"] == "active"


def test_nothing_to_reject_is_a_conflict(system):
    plan_id, person = active_plan(system)
    written = version(system, plan_id)
    refused = run(person, plan_id, "reject-changes", reason="Nej")
    assert refused.status_code == 409, refused.text
    assert rule_of(refused) == "changes-to-reject"
    # The person's own changes never wait, so they leave nothing to reject either.
    ok(run(person, plan_id, "record-need", text="Jag vill ha samma personal"))
    written = version(system, plan_id)
    assert rule_of(run(person, plan_id, "reject-changes")) == "changes-to-reject"
    assert version(system, plan_id) == written


def test_only_the_person_or_a_meeting_they_attended_rejects(system):
    plan_id, person = active_plan(system)
    sip = system.sip
    propose_sleep_school(sip, plan_id)
    written = version(system, plan_id)
    personnummer = new_personnummer()
    refusals = {
        "coordinator as the person": (run(sip, plan_id, "reject-changes", rejectedBy="person"),
                                      403, "staff-record-a-meetings-rejection"),
        "coordinator, no rejectedBy": (run(sip, plan_id, "reject-changes"),
                                       403, "staff-record-a-meetings-rejection"),
        "professional": (run(system.as_caller("professional").sip, plan_id, "reject-changes",
                             rejectedBy="meeting", meeting="meeting-1"),
                         403, "role-matrix-reject-changes"),
        "record system": (run(system.as_caller("integration").sip, plan_id, "reject-changes",
                              rejectedBy="meeting", meeting="meeting-1"),
                          403, "role-matrix-reject-changes"),
        "auditor": (run(system.as_caller("auditor").sip, plan_id, "reject-changes"), 403, None),
        "outsider": (run(system.as_caller(organization=OTHER_REGION).sip, plan_id,
                         "reject-changes", rejectedBy="meeting", meeting="meeting-1"),
                     404, None),
        "another person": (run(system.as_caller("patient", organization=None,
                                                patient=personnummer).sip,
                               plan_id, "reject-changes"), 404, None),
        "the person as a meeting": (run(person, plan_id, "reject-changes", rejectedBy="meeting",
                                        meeting="meeting-1"), 403, "person-rejects"),
        "no meeting held": (run(sip, plan_id, "reject-changes", rejectedBy="meeting",
                                meeting="meeting-1"),
                            409, "meeting-rejection-needs-the-person"),
        "the person as someone else": (run(person, plan_id, "reject-changes",
                                           rejectedBy="neighbour"), 409, "rejecter"),
    }  # fmt: skip
    for who, (response, status, rule) in refusals.items():
        assert response.status_code == status, (who, response.text)
        assert SLEEP_SCHOOL not in response.text, who
        if rule:
            assert rule_of(response) == rule, who
    assert version(system, plan_id) == written, "a refusal wrote to the plan"

    # A meeting held without the person does not reject; one they attended does.
    meeting = {"end": "2027-01-10T10:00:00+01:00", "location": "Vårdcentralen"}
    ok(run(sip, plan_id, "schedule-meeting", start="2027-01-10T09:00:00+01:00", **meeting))
    ok(run(sip, plan_id, "record-meeting", meeting="meeting-1", attendee="participant-2"))
    without = run(sip, plan_id, "reject-changes", rejectedBy="meeting", meeting="meeting-1")
    assert without.status_code == 409 and rule_of(without) == "meeting-rejection-needs-the-person"
    ok(run(sip, plan_id, "schedule-meeting", start="2027-01-20T09:00:00+01:00",
           **{**meeting, "end": "2027-01-20T10:00:00+01:00"}))  # fmt: skip
    ok(run(sip, plan_id, "record-meeting", meeting="meeting-2",
           attendee=["participant-1", "participant-2"]))  # fmt: skip
    rejected = ok(run(sip, plan_id, "reject-changes", rejectedBy="meeting", meeting="meeting-2",
                      reason="Personen vill vänta"))  # fmt: skip
    assert SLEEP_SCHOOL not in str(rejected) and proposals(rejected) == []
    assert notes(rejected)[-1] == (
        "Ändringar avböjda vid SIP-mötet meeting-2: intervention-2 assigned "
        "— Skäl: Personen vill vänta"
    )


def test_if_match_is_honoured(system):
    plan_id, person = active_plan(system)
    propose_sleep_school(system.sip, plan_id)
    current = version(system, plan_id)
    path = f"/fhir/CarePlan/{plan_id}/$reject-changes"
    body = parameters(reason="Nej tack")
    stale = person.post(
        path, json=body, headers={**FHIR_JSON, "If-Match": f'W/"{int(current) - 1}"'}
    )
    assert stale.status_code == 412, stale.text
    assert version(system, plan_id) == current
    assert SLEEP_SCHOOL in str(ok(system.sip.get(f"/fhir/CarePlan/{plan_id}")))
    fresh = person.post(path, json=body, headers={**FHIR_JSON, "If-Match": f'W/"{current}"'})
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["ETag"] == f'W/"{int(current) + 1}"'


def test_unknown_or_malformed_parameters_are_refused_by_name(system):
    plan_id, person = active_plan(system)
    propose_sleep_school(system.sip, plan_id)
    current = version(system, plan_id)
    path = f"/fhir/CarePlan/{plan_id}/$reject-changes"
    for name, body in (
        ("mood", parameters(reason="Nej", mood="arg")),
        ("reason", {"resourceType": "Parameters", "parameter": [
            {"name": "reason", "valueBoolean": True}]}),
        ("rejectedBy", {"resourceType": "Parameters", "parameter": [
            {"name": "rejectedBy", "valueBoolean": True}]}),
    ):  # fmt: skip
        refused = person.post(path, json=body, headers=FHIR_JSON)
        assert refused.status_code == 400, (name, refused.text)
        assert f"'{name}'" in refused.json()["issue"][0]["diagnostics"]
    assert version(system, plan_id) == current


def test_the_operation_is_declared(system):
    metadata = ok(system.sip.get("/fhir/metadata"))
    (careplan,) = [r for r in metadata["rest"][0]["resource"] if r["type"] == "CarePlan"]
    assert "reject-changes" in [o["name"] for o in careplan["operation"]]
    definition = ok(system.sip.get("/fhir/OperationDefinition/CarePlan-reject-changes"))
    assert [p["name"] for p in definition["parameter"] if p["use"] == "in"] == [
        "rejectedBy",
        "meeting",
        "reason",
    ]


def test_the_read_model_rebuilt_from_the_log_equals_the_live_one(fresh_system):
    """Rejections change who is responsible and who is invited: the plan index follows, and
    rebuilt from zero it is the same (what `sip projections rebuild --check` compares)."""
    system = fresh_system
    plan_id, person = active_plan(system)
    sip = system.sip
    ok(run(sip, plan_id, "invite-organization", organization=SCHOOL, kind="other"))
    ok(
        run(
            sip,
            plan_id,
            "assign-intervention",
            text="Läxhjälp",
            kind="support",
            need="need-1",
            performerOrganization=MUNICIPALITY,
            responsiblePrincipal="municipality",
            responsibleOrganization=MUNICIPALITY,
        )
    )
    ok(run(sip, plan_id, "set-follow-up", date="2027-09-01"))
    ok(run(person, plan_id, "reject-changes"))
    index = system.sip_app.state.index
    index.catch_up()

    def rows() -> list[tuple[Any, ...]]:
        with index.engine.connect() as connection:
            return sorted(
                (table.name, *row)
                for table in (plan_index, plan_organizations)
                for row in connection.execute(select(table))
            )

    live = rows()
    assert ("plan_organizations", plan_id, SCHOOL, "member") not in live
    (indexed,) = [row for row in live if row[0] == "plan_index" and row[1] == plan_id]
    assert str(indexed[10]) == "2027-03-01"  # next_follow_up, as approved
    index.rebuild()
    assert rows() == live


AT = datetime(2026, 11, 2, tzinfo=UTC)
BY_REGION = {"subject": "anna", "role": "coordinator", "organization": REGION}


def test_a_rejection_shows_each_reader_only_the_changes_and_reason_they_may_see():
    """The rejected changes are their authors' entries, as they were while pending; the reason
    is the entry of whoever recorded the rejection (here the region, recording a meeting's)."""
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
    person = plan.add_participant(participant={"kind": "person"}, at=AT, by=BY_REGION)
    plan._activated(consents=["consent-1"], activated_at=AT, activated_by=BY_REGION)
    municipality = {"role": "coordinator", "organization": MUNICIPALITY}
    plan.record_need(text="Kommunens förslag", wishes=None, at=AT, by=municipality)
    plan.record_need(text="Regionens förslag", wishes=None, at=AT, by=BY_REGION)
    meeting = plan.schedule_meeting(
        meeting={"start": AT, "end": AT, "location": "Här"}, at=AT, by=BY_REGION
    )
    plan.record_meeting(
        meeting_id=meeting, attendees=[person], notes=None, approved_changes=False, at=AT,
        by=BY_REGION,
    )  # fmt: skip
    plan.reject_changes(
        rejected_by="meeting", meeting_id=meeting, reason="Regionens anteckning", at=AT,
        by=BY_REGION,
    )  # fmt: skip
    assert plan.needs == {}

    def note(disclosure: Disclosure) -> tuple[str, set[tuple[str | None, str]]]:
        seen = redact(plan, disclosure)
        rendered = plan_to_fhir(seen)
        (text,) = [n["text"] for n in rendered["note"] if "avböjda" in n["text"]]
        return text, {(w.custodian, w.kind) for w in withheld_of(seen)}

    whole, withheld = note(Disclosure(custodians=frozenset({REGION, MUNICIPALITY, PERSON})))
    assert whole == (
        "Ändringar avböjda vid SIP-mötet meeting-1: need-1 recorded; need-2 recorded "
        "— Skäl: Regionens anteckning"
    )
    assert withheld == set()
    text, withheld = note(Disclosure(custodians=frozenset({MUNICIPALITY, PERSON})))
    assert text == "Ändringar avböjda vid SIP-mötet meeting-1: need-1 recorded"
    assert {(REGION, "change"), (REGION, "rejection-reason")} <= withheld
    assert "Regionens" not in str(plan_to_fhir(redact(plan, Disclosure(
        custodians=frozenset({MUNICIPALITY, PERSON})))))  # fmt: skip
