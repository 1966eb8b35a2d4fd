"""The SIP service's FHIR API, and its consent-gated activation over real HTTP."""

import re

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan

from contracts.identifiers import PERSONNUMMER_SYSTEM
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    withdrawal,
)


def start(client, personnummer, ready=True):
    """A new plan; `ready`: with what activation needs (and read back as it is then)."""
    response = client.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    plan = response.json()
    if not ready:
        return plan
    prepare_for_activation(client, plan["id"])
    return client.get(f"/fhir/CarePlan/{plan['id']}").json()


def version(plan):
    return int(plan["meta"]["versionId"])


def test_a_started_plan_is_a_draft_sip_careplan(system):
    personnummer = new_personnummer()
    plan = start(system.sip, personnummer, ready=False)
    CarePlan.model_validate(plan)
    assert (plan["status"], plan["intent"], plan["meta"]["versionId"]) == ("draft", "plan", "1")
    assert plan["category"][0]["coding"][0]["code"] == "SIP"
    assert plan["subject"]["identifier"] == {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
    read = system.sip.get(f"/fhir/CarePlan/{plan['id']}")
    assert read.headers["ETag"] == 'W/"1"'
    assert read.json() == plan


def test_activation_with_a_consent_in_force(system):
    personnummer = new_personnummer()
    given = system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    plan = start(system.sip, personnummer)
    activated = system.sip.post(f"/fhir/CarePlan/{plan['id']}/$activate")
    assert activated.status_code == 200, activated.text
    assert activated.headers["ETag"] == f'W/"{version(plan) + 1}"'
    body = activated.json()
    CarePlan.model_validate(body)
    assert body["status"] == "active"
    assert "start" in body["period"]
    assert body["supportingInfo"][0]["identifier"]["value"] == f"urn:uuid:{given.json()['id']}"

    history = system.sip.get(f"/fhir/CarePlan/{plan['id']}/_history").json()
    Bundle.model_validate(history)
    statuses = [e["resource"]["status"] for e in history["entry"]]
    assert statuses == ["active"] + ["draft"] * version(plan)
    assert system.sip.get(f"/fhir/CarePlan/{plan['id']}/_history/{version(plan)}").json() == plan


def test_activation_without_consent_is_refused_and_writes_nothing(system):
    personnummer = new_personnummer()
    plan = start(system.sip, personnummer)
    refused = system.sip.post(f"/fhir/CarePlan/{plan['id']}/$activate")
    assert refused.status_code == 409
    issue = refused.json()["issue"][0]
    assert issue["details"]["text"] == "activation-requires-consent"
    # It names the direction not covered, never a consent or block behind the answer.
    assert f"from {REGION} (region) to {MUNICIPALITY} (municipality)" in issue["diagnostics"]
    assert "is not permitted" in issue["diagnostics"] and "Consent/" not in issue["diagnostics"]
    assert system.sip.get(f"/fhir/CarePlan/{plan['id']}").json() == plan


def test_a_consent_for_other_organisations_or_a_withdrawn_one_does_not_activate(system):
    personnummer = new_personnummer()
    # Registered by an organisation it names (issue 12: the region may not register it).
    other = system.as_caller(organization=OTHER_REGION).consent.post(
        "/fhir/Consent",
        json=consent(personnummer, organizations=(OTHER_REGION, MUNICIPALITY)),
        headers=FHIR_JSON,
    )
    assert other.status_code == 201, other.text
    withdrawn = system.consent.post(
        "/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON
    ).json()
    system.consent.post(
        f"/fhir/Consent/{withdrawn['id']}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    plan = start(system.sip, personnummer)
    refused = system.sip.post(f"/fhir/CarePlan/{plan['id']}/$activate")
    assert refused.status_code == 409
    diagnostics = refused.json()["issue"][0]["diagnostics"]
    assert f"from {MUNICIPALITY} (municipality) to {REGION} (region)" in diagnostics
    assert withdrawn["id"] not in diagnostics and "Consent/" not in diagnostics
    # Why is in the consent service's access log, for its auditors.
    log = system.as_caller("auditor").consent.get(
        "/fhir/AuditEvent", params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}
    )
    reasons = " ".join(e["resource"].get("outcomeDesc", "") for e in log.json()["entry"])
    assert "withdrawn" in reasons and "organisation" in reasons  # ... does not cover the ...
    assert system.sip.get(f"/fhir/CarePlan/{plan['id']}").json()["status"] == "draft"


def test_an_active_plan_cannot_be_activated_again(system):
    personnummer = new_personnummer()
    system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    plan = start(system.sip, personnummer)
    assert system.sip.post(f"/fhir/CarePlan/{plan['id']}/$activate").status_code == 200
    again = system.sip.post(f"/fhir/CarePlan/{plan['id']}/$activate")
    assert again.status_code == 409
    assert again.json()["issue"][0]["details"]["text"] == "activate-only-draft"
    assert system.sip.get(f"/fhir/CarePlan/{plan['id']}").headers["ETag"] == (
        f'W/"{version(plan) + 1}"'
    )


def test_activation_fails_closed_when_the_consent_service_is_down(sip_without_consent_service):
    sip = sip_without_consent_service
    plan = start(sip, new_personnummer())
    refused = sip.post(f"/fhir/CarePlan/{plan['id']}/$activate")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert refused.json()["issue"][0]["code"] == "transient"
    assert sip.get(f"/fhir/CarePlan/{plan['id']}").json() == plan


def test_activation_with_a_stale_if_match_is_refused(system):
    personnummer = new_personnummer()
    system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    plan = start(system.sip, personnummer)
    stale = system.sip.post(
        f"/fhir/CarePlan/{plan['id']}/$activate", headers={"If-Match": f'W/"{version(plan) - 1}"'}
    )
    assert stale.status_code == 412
    current = system.sip.post(
        f"/fhir/CarePlan/{plan['id']}/$activate", headers={"If-Match": f'W/"{version(plan)}"'}
    )
    assert current.status_code == 200


def test_search_by_subject_identifier_and_status(system):
    personnummer, other = new_personnummer(), new_personnummer()
    system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    active = start(system.sip, personnummer)["id"]
    draft = start(system.sip, personnummer, ready=False)["id"]
    start(system.sip, other, ready=False)
    system.sip.post(f"/fhir/CarePlan/{active}/$activate")

    def ids(**query):
        bundle = system.sip.get("/fhir/CarePlan", params=query).json()
        Bundle.model_validate(bundle)
        return {entry["resource"]["id"] for entry in bundle["entry"]}

    subject = f"{PERSONNUMMER_SYSTEM}|{personnummer}"
    assert ids(**{"subject:identifier": subject}) == {active, draft}
    assert ids(**{"subject:identifier": subject, "status": "active"}) == {active}
    assert ids(**{"subject:identifier": subject, "status": "draft"}) == {draft}
    assert active in ids(status="active") and draft not in ids(status="active")


ROUTE_OF_INTERACTION = {
    "create": ("POST", "/fhir/{type}"),
    "read": ("GET", "/fhir/{type}/{{}}"),
    "vread": ("GET", "/fhir/{type}/{{}}/_history/{{}}"),
    "history-instance": ("GET", "/fhir/{type}/{{}}/_history"),
    "history-type": ("GET", "/fhir/{type}/_history"),
    "search-type": ("GET", "/fhir/{type}"),
    "update": ("PUT", "/fhir/{type}/{{}}"),
    "delete": ("DELETE", "/fhir/{type}/{{}}"),
}


def served_routes(app):
    """(method, path) of every route, path parameters written `{}`."""
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    }


def test_metadata_tells_the_truth_about_what_each_service_serves(system):
    for client, app, main_type in (
        (system.sip, system.sip_app, "CarePlan"),
        (system.consent, system.consent_app, "Consent"),
    ):
        statement = client.get("/fhir/metadata").json()
        assert statement["fhirVersion"] == "4.0.1"
        resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
        assert {main_type, "AuditEvent", "Patient"} <= set(resources)
        routes = served_routes(app)
        for resource_type, resource in resources.items():
            for interaction in resource["interaction"]:
                method, path = ROUTE_OF_INTERACTION[interaction["code"]]
                assert (method, path.format(type=resource_type)) in routes, interaction
            for operation in resource.get("operation", []):
                assert any(
                    path.startswith(f"/fhir/{resource_type}")
                    and path.endswith(f"${operation['name']}")
                    for _, path in routes
                ), operation["name"]
    assert system.sip.get("/healthz").status_code == 200
    assert system.sip.get("/readyz").status_code == 200
    assert system.consent.get("/readyz").status_code == 200
