"""History for auditors: a plan as it stood at past instants, with the consent state then."""

import time
from datetime import timedelta

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careteam import CareTeam

from services.common.fhir_time import fhir_instant, now, parse_fhir_datetime
from tests.fhir_data import (
    FHIR_JSON,
    OTHER_REGION,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    run,
    withdrawal,
)


def instant():
    moment = fhir_instant(now())
    time.sleep(0.01)  # the next event is recorded strictly after this instant
    return moment


def test_a_plan_as_it_stood_at_several_past_instants(system):
    personnummer = new_personnummer()
    before = instant()
    consent_id = system.consent.post(
        "/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON
    ).json()["id"]
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    plan = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()
    as_draft = instant()
    activated = system.sip.post(f"/fhir/CarePlan/{plan['id']}/$activate").json()
    as_active = instant()
    system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    after_withdrawal = instant()
    system.settle()  # the SIP service notes the withdrawal on the plan: a version of its own
    noted = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()
    assert int(noted["meta"]["versionId"]) == int(activated["meta"]["versionId"]) + 1
    noted_at = parse_fhir_datetime(noted["meta"]["lastUpdated"])

    def at(moment):
        return system.sip.get(f"/fhir/CarePlan/{plan['id']}", params={"_at": moment})

    assert at(before).status_code == 404
    assert at(as_draft).json() == plan
    assert at(as_active).json() == activated
    assert at(fhir_instant(noted_at - timedelta(microseconds=1))).json() == activated
    assert at(noted["meta"]["lastUpdated"]).json() == noted

    def as_of(moment):
        bundle = system.sip.get(
            f"/fhir/CarePlan/{plan['id']}/$as-of", params={"instant": moment}
        ).json()
        Bundle.model_validate(bundle)
        return [entry["resource"] for entry in bundle["entry"]]

    assert [r["status"] for r in as_of(as_draft)] == ["draft"]
    assert [(r["resourceType"], r["status"]) for r in as_of(as_active)] == [
        ("CarePlan", "active"),
        ("Consent", "active"),
    ]
    assert [(r["resourceType"], r["status"]) for r in as_of(after_withdrawal)] == [
        ("CarePlan", "active"),
        ("Consent", "inactive"),
    ]


def test_history_since_and_at_and_at_type_level(fresh_system):
    """Type-level history shows everything the caller may see: on services of its own."""
    system = fresh_system
    personnummer = new_personnummer()
    system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    first = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    prepare_for_activation(system.sip, first.json()["id"])
    middle = instant()
    system.sip.post(f"/fhir/CarePlan/{first.json()['id']}/$activate")
    second = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    hidden = system.as_caller(organization=OTHER_REGION).sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer(), OTHER_REGION), headers=FHIR_JSON
    )
    plan_id = first.json()["id"]

    def versions(path, **params):
        bundle = system.sip.get(path, params=params).json()
        Bundle.model_validate(bundle)
        return [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in bundle["entry"]]

    # The plan had 6 versions before the middle instant; activation made the 7th.
    assert versions(f"/fhir/CarePlan/{plan_id}/_history", _since=middle) == [(plan_id, "7")]
    assert versions(f"/fhir/CarePlan/{plan_id}/_history", _at=middle) == [
        (plan_id, "7"),
        (plan_id, "6"),
    ]
    since_middle = versions("/fhir/CarePlan/_history", _since=middle)
    assert since_middle == [(second.json()["id"], "1"), (plan_id, "7")]
    everything = versions("/fhir/CarePlan/_history")
    assert (plan_id, "1") in everything
    assert hidden.json()["id"] not in {resource_id for resource_id, _ in everything}
    bad = system.sip.get(f"/fhir/CarePlan/{plan_id}/_history", params={"_since": "yesterday"})
    assert bad.status_code == 400


def test_every_version_has_a_provenance_naming_who_how_and_on_which_consent(system):
    personnummer = new_personnummer()
    consent_id = system.consent.post(
        "/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON
    ).json()["id"]
    coordinator = system.as_caller(subject="anna", unit="SE2321000032-U0042")
    plan_id = coordinator.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(coordinator.sip, plan_id)
    coordinator.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")

    bundle = system.sip.get("/fhir/Provenance", params={"target": f"CarePlan/{plan_id}"}).json()
    Bundle.model_validate(bundle)
    provenances = [entry["resource"] for entry in bundle["entry"]]
    assert [p["target"][0]["reference"] for p in provenances] == [
        f"CarePlan/{plan_id}/_history/{version}" for version in range(1, 8)
    ]
    assert [p["activity"]["coding"][0]["code"] for p in provenances] == ["CREATE"] + ["EXECUTE"] * 6
    assert [p["activity"]["text"] for p in provenances][1:] == [
        "invite-organization",
        "record-need",
        "assign-intervention",
        "assign-overall-responsibility",
        "set-follow-up",
        "activate",
    ]
    for provenance in provenances:
        assert provenance["agent"][0]["who"]["identifier"]["value"] == "anna"
        assert provenance["location"]["identifier"]["value"] == "SE2321000032-U0042"
    assert "entity" not in provenances[0]
    assert provenances[-1]["entity"][0]["what"]["identifier"]["value"] == f"urn:uuid:{consent_id}"

    outsider = system.as_caller(organization=OTHER_REGION)
    hidden = outsider.sip.get("/fhir/Provenance", params={"target": f"CarePlan/{plan_id}"})
    assert hidden.status_code == 404


def test_care_team_goal_and_meeting_have_histories_of_their_own(fresh_system):
    """Type-level history shows everything the caller may see: on services of its own."""
    system = fresh_system
    personnummer = new_personnummer()
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    goal_id, team_id = f"{plan_id}-goal-1", f"{plan_id}-team"
    assert run(system.sip, plan_id, "record-need", text="Jag vill klara mig hemma").is_success
    assert run(system.sip, plan_id, "set-goal", text="Handla själv", need="need-1").is_success
    set_at = instant()
    prepare_for_activation(system.sip, plan_id)  # invites the municipality: the team changes
    assert run(
        system.sip, plan_id, "revise-goal", goal="goal-1", text="Handla själv två dagar i veckan",
        reason="Mer realistiskt",
    ).is_success  # fmt: skip
    assert run(system.sip, plan_id, "assess-goal", goal="goal-1", outcome="achieved").is_success
    plan_version = int(system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["meta"]["versionId"])

    def history(path, **params):
        response = system.sip.get(path, params=params)
        assert response.status_code == 200, response.text
        bundle = response.json()
        Bundle.model_validate(bundle)
        return bundle["entry"]

    goal_versions = history(f"/fhir/Goal/{goal_id}/_history")
    # Set, revised, assessed: the plan's other changes are not versions of the goal.
    assert len(goal_versions) == 3 < plan_version
    texts = [entry["resource"]["description"]["text"] for entry in goal_versions]
    assert texts == ["Handla själv två dagar i veckan"] * 2 + ["Handla själv"]
    assert goal_versions[0]["resource"]["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert [entry["request"]["method"] for entry in goal_versions] == ["PUT", "PUT", "POST"]
    for entry in goal_versions:  # every version listed reads back the same with vread
        version = entry["resource"]["meta"]["versionId"]
        vread = system.sip.get(f"/fhir/Goal/{goal_id}/_history/{version}")
        assert vread.json() == entry["resource"]
        assert vread.headers["ETag"] == f'W/"{version}"'
    assert system.sip.get(f"/fhir/Goal/{goal_id}/_history/1").status_code == 404  # no goal yet
    as_set = system.sip.get(f"/fhir/Goal/{goal_id}", params={"_at": set_at}).json()
    assert as_set == goal_versions[-1]["resource"]
    assert [e["resource"]["meta"]["versionId"] for e in history(
        f"/fhir/Goal/{goal_id}/_history", _since=set_at
    )] == [e["resource"]["meta"]["versionId"] for e in goal_versions[:2]]  # fmt: skip

    team_versions = history(f"/fhir/CareTeam/{team_id}/_history")
    members = [len(entry["resource"]["participant"]) for entry in team_versions]
    assert members[-1] == 1 and members[0] == 2  # the municipality joined
    CareTeam.model_validate(team_versions[0]["resource"])

    hidden_plan = (
        system.as_caller(organization=OTHER_REGION)
        .sip.post(
            "/fhir/CarePlan", json=care_plan(new_personnummer(), OTHER_REGION), headers=FHIR_JSON
        )
        .json()["id"]
    )
    every_goal = {entry["resource"]["id"] for entry in history("/fhir/Goal/_history")}
    assert goal_id in every_goal
    every_team = {entry["resource"]["id"] for entry in history("/fhir/CareTeam/_history")}
    assert team_id in every_team and f"{hidden_plan}-team" not in every_team
    outsider = system.as_caller(organization=OTHER_REGION).sip
    for path in (f"/fhir/Goal/{goal_id}/_history", f"/fhir/Goal/{goal_id}/_history/3",
                 f"/fhir/CareTeam/{team_id}"):  # fmt: skip
        assert outsider.get(path).status_code == 404
    assert system.sip.get(f"/fhir/Goal/{plan_id}-goal-9/_history").status_code == 404
    for path, params in ((f"/fhir/Goal/{goal_id}", {"_at": "yesterday"}),
                         (f"/fhir/Goal/{goal_id}/_history", {"_since": "soon"}),
                         ("/fhir/CareTeam/_history", {"_since": "2026-13-01"})):  # fmt: skip
        refused = system.sip.get(path, params=params)
        assert refused.status_code == 400, path
        assert refused.json()["resourceType"] == "OperationOutcome"
    # Reads of the views are in the access log, the outsider's refused one too.
    log = (
        system.as_caller("auditor")
        .sip.get("/fhir/AuditEvent", params={"patient:identifier": personnummer, "_count": 1000})
        .json()
    )
    read_entities = {
        (entry["resource"]["subtype"][0]["code"], entry["resource"]["outcome"], what["reference"])
        for entry in log["entry"]
        for what in (e.get("what", {}) for e in entry["resource"]["entity"])
        if "reference" in what
    }
    assert ("history-instance", "0", f"Goal/{goal_id}/_history") in read_entities
    assert ("read", "4", f"CareTeam/{team_id}") in read_entities
