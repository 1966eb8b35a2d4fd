"""An invited organisation accepts its invitation (`$accept-invitation`), over HTTP on both
backends: the CareTeam shows each organisation's invitation, invited or accepted, with the
unit and contact person it named; only an organisation taking part by invitation accepts, for
itself and once; a refusal writes nothing."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.careteam import CareTeam

from contracts.canonical import EXT_INVITATION, EXT_PENDING_APPROVAL
from contracts.identifiers import HSA_ID_SYSTEM
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    new_personnummer,
    parameters,
    prepare_for_activation,
    run,
)
from tests.fhir_data import active_plan as shared_active_plan
from tests.fhir_data import created_or_ok as ok

SCHOOL = "SE2120000357-S0077"
MUNICIPAL_UNIT = "SE2120000357-E0042"


def rule_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["text"]


def draft_plan(system: Any) -> tuple[str, str]:
    """A draft the region started and invited the municipality to: (plan id, personnummer)."""
    personnummer = new_personnummer()
    plan_id = ok(
        system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    )["id"]
    prepare_for_activation(system.sip, plan_id)
    return plan_id, personnummer


def version(system: Any, plan_id: str) -> str:
    return ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]


def invitations(client: Any, plan_id: str) -> dict[str, dict[str, Any]]:
    """Each organisation's invitation in the CareTeam: its parts' values by name."""
    team = ok(client.get(f"/fhir/CareTeam/{plan_id}-team"))
    CareTeam.model_validate(team)
    found = {}
    for participant in team["participant"]:
        if participant["member"].get("type") != "Organization":
            continue
        (invitation,) = [e for e in participant["extension"] if e["url"] == EXT_INVITATION]
        parts = {
            part["url"]: next(v for k, v in part.items() if k.startswith("value"))
            for part in invitation["extension"]
        }
        found[participant["member"]["identifier"]["value"]] = parts
    return found


def test_the_invited_municipality_accepts_and_the_care_team_shows_it(system):
    plan_id, _ = draft_plan(system)
    municipality = system.as_caller(organization=MUNICIPALITY, unit=MUNICIPAL_UNIT).sip
    before = invitations(system.sip, plan_id)
    assert before[MUNICIPALITY]["status"] == "invited"
    assert set(before[MUNICIPALITY]) == {"status", "invitedAt"}
    # The starting region takes part from the start: accepted then.
    assert before[REGION]["status"] == "accepted"
    assert before[REGION]["acceptedAt"] == before[REGION]["invitedAt"]

    accepted = run(
        municipality, plan_id, "accept-invitation", unit=MUNICIPAL_UNIT, contact="Karin Lund"
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["resourceType"] == "CarePlan"
    # No consent is given in this draft: the region sees none of the municipality's entries,
    # yet it sees the acceptance, which is the plan's frame (who takes part, how to reach them).
    after = invitations(system.sip, plan_id)[MUNICIPALITY]
    assert after["status"] == "accepted"
    assert after["invitedAt"] == before[MUNICIPALITY]["invitedAt"]
    assert after["acceptedAt"] > after["invitedAt"]
    assert after["unit"] == {"system": HSA_ID_SYSTEM, "value": MUNICIPAL_UNIT}
    assert after["contact"] == "Karin Lund"
    assert invitations(municipality, plan_id)[MUNICIPALITY] == after


def test_the_unit_and_contact_are_optional(system):
    plan_id, _ = draft_plan(system)
    municipality = system.as_caller("professional", organization=MUNICIPALITY).sip
    ok(run(municipality, plan_id, "accept-invitation"))
    after = invitations(system.sip, plan_id)[MUNICIPALITY]
    assert set(after) == {"status", "invitedAt", "acceptedAt"}
    assert after["status"] == "accepted"


def test_an_invitation_is_accepted_once_and_only_by_the_invited(system):
    plan_id, personnummer = draft_plan(system)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    ok(run(municipality, plan_id, "accept-invitation", contact="Karin Lund"))
    written = version(system, plan_id)
    refusals = {
        "again": run(municipality, plan_id, "accept-invitation", contact="Någon annan"),
        "starter": run(system.sip, plan_id, "accept-invitation"),
        "outsider": run(
            system.as_caller(organization=OTHER_REGION).sip, plan_id, "accept-invitation"
        ),
        "person": run(
            system.as_caller("patient", organization=None, patient=personnummer).sip,
            plan_id,
            "accept-invitation",
        ),
        "auditor": run(
            system.as_caller("auditor", organization=MUNICIPALITY).sip,
            plan_id,
            "accept-invitation",
        ),
    }
    assert refusals["again"].status_code == 409
    assert rule_of(refusals["again"]) == "invitation-accepted-once"
    assert refusals["starter"].status_code == 403
    assert rule_of(refusals["starter"]) == "invited-organization"
    assert refusals["outsider"].status_code == 404  # it does not learn the plan exists
    assert refusals["person"].status_code == 403
    assert refusals["auditor"].status_code == 403
    assert version(system, plan_id) == written, "a refusal wrote to the plan"
    assert invitations(system.sip, plan_id)[MUNICIPALITY]["contact"] == ("Karin Lund")


def test_if_match_is_honoured(system):
    plan_id, _ = draft_plan(system)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    current = version(system, plan_id)
    path = f"/fhir/CarePlan/{plan_id}/$accept-invitation"
    body = parameters(contact="Karin Lund")
    stale = municipality.post(
        path, json=body, headers={**FHIR_JSON, "If-Match": f'W/"{int(current) - 1}"'}
    )
    assert stale.status_code == 412, stale.text
    assert version(system, plan_id) == current
    fresh = municipality.post(path, json=body, headers={**FHIR_JSON, "If-Match": f'W/"{current}"'})
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["ETag"] == f'W/"{int(current) + 1}"'


def test_unknown_or_malformed_parameters_are_refused_by_name(system):
    plan_id, _ = draft_plan(system)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    current = version(system, plan_id)
    path = f"/fhir/CarePlan/{plan_id}/$accept-invitation"
    for name, body in (
        ("mood", parameters(contact="Karin Lund", mood="glad")),
        ("unit", parameters(unit="not an HSA-id")),
        ("contact", {"resourceType": "Parameters", "parameter": [
            {"name": "contact", "valueBoolean": True}]}),
    ):  # fmt: skip
        refused = municipality.post(path, json=body, headers=FHIR_JSON)
        assert refused.status_code == 400, (name, refused.text)
        assert f"'{name}'" in refused.json()["issue"][0]["diagnostics"]
    assert version(system, plan_id) == current


def test_on_an_active_plan_an_acceptance_waits_for_no_approval(system):
    plan_id, personnummer = shared_active_plan(system, (REGION, MUNICIPALITY, SCHOOL))
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    ok(run(municipality, plan_id, "accept-invitation", unit=MUNICIPAL_UNIT))
    plan = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert not [e for e in plan["extension"] if e["url"] == EXT_PENDING_APPROVAL]
    assert invitations(system.sip, plan_id)[MUNICIPALITY]["status"] == "accepted"

    # A school invited to the active plan does not take part before the person approves: it
    # sees nothing and so accepts nothing; after the approval it accepts.
    ok(run(system.sip, plan_id, "invite-organization", organization=SCHOOL, kind="other"))
    school = system.as_caller(organization=SCHOOL).sip
    assert run(school, plan_id, "accept-invitation").status_code == 404
    assert invitations(system.sip, plan_id)[SCHOOL]["status"] == "invited"
    person = system.as_caller("patient", organization=None, patient=personnummer).sip
    ok(run(person, plan_id, "approve-changes"))
    ok(run(school, plan_id, "accept-invitation", contact="Rektor"))
    # The person sees who takes part and whom to ask there.
    assert invitations(person, plan_id)[SCHOOL]["contact"] == "Rektor"


def pending_for(client: Any, organization: str, *, by_post: bool = False) -> list[str]:
    """The ids of the plans `CarePlan?invitation-pending=<organization>` finds."""
    if by_post:  # form-encoded, as a record system keeps identifiers out of URLs
        found = client.post("/fhir/CarePlan/_search", data={"invitation-pending": organization})
    else:
        found = client.get("/fhir/CarePlan", params={"invitation-pending": organization})
    return [e["resource"]["id"] for e in ok(found)["entry"]]


def test_the_worklist_finds_the_plan_until_the_invitation_is_accepted(system):
    plan_id, _ = draft_plan(system)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert plan_id in pending_for(municipality, MUNICIPALITY)
    assert plan_id in pending_for(municipality, MUNICIPALITY, by_post=True)
    assert plan_id in pending_for(municipality, f"{HSA_ID_SYSTEM}|{MUNICIPALITY}")
    assert plan_id not in pending_for(system.sip, REGION)  # the starter has nothing to accept
    # With the care team included, the worklist shows whose invitation it is and since when.
    found = ok(
        municipality.get(
            "/fhir/CarePlan",
            params={"invitation-pending": MUNICIPALITY, "_include": "CarePlan:care-team"},
        )
    )
    teams = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "include"]
    assert f"{plan_id}-team" in [team["id"] for team in teams]

    ok(run(municipality, plan_id, "accept-invitation"))
    assert plan_id not in pending_for(municipality, MUNICIPALITY)
    assert plan_id not in pending_for(municipality, MUNICIPALITY, by_post=True)


def test_an_organisation_asks_only_for_its_own_invitations(system):
    plan_id, personnummer = draft_plan(system)
    asking = {
        "region": system.sip,
        "person": system.as_caller("patient", organization=None, patient=personnummer).sip,
    }
    for who, client in asking.items():
        for by_post in (False, True):
            if by_post:
                data = {"invitation-pending": MUNICIPALITY}
                refused = client.post("/fhir/CarePlan/_search", data=data)
            else:
                refused = client.get("/fhir/CarePlan", params={"invitation-pending": MUNICIPALITY})
            assert refused.status_code == 403, (who, refused.text)
            assert rule_of(refused) == "invitation-pending-own-organization"
            assert plan_id not in refused.text
    malformed = system.sip.get("/fhir/CarePlan", params={"invitation-pending": "Kommunen"})
    assert malformed.status_code == 400, malformed.text


def test_the_worklist_shows_no_plan_the_organisation_may_not_see_nor_a_closed_one(system):
    plan_id, personnummer = shared_active_plan(system, (REGION, MUNICIPALITY, SCHOOL))
    ok(run(system.sip, plan_id, "invite-organization", organization=SCHOOL, kind="other"))
    school = system.as_caller(organization=SCHOOL).sip
    assert plan_id not in pending_for(school, SCHOOL)  # proposed only: it sees nothing yet
    person = system.as_caller("patient", organization=None, patient=personnummer).sip
    ok(run(person, plan_id, "approve-changes"))
    assert plan_id in pending_for(school, SCHOOL)
    ok(run(system.sip, plan_id, "close", reason="goals-reached"))
    assert plan_id not in pending_for(school, SCHOOL)  # a closed plan takes no answer


def test_the_capability_statement_declares_the_search_parameter(system):
    metadata = ok(system.sip.get("/fhir/metadata"))
    (careplan,) = [r for r in metadata["rest"][0]["resource"] if r["type"] == "CarePlan"]
    assert "invitation-pending" in [p["name"] for p in careplan["searchParam"]]
    assert "accept-invitation" in [o["name"] for o in careplan["operation"]]
