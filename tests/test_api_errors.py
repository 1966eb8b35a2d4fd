"""Bad input gets an OperationOutcome with the right status, and writes nothing."""

import re

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from services.common.auth import smart
from tests.fhir_data import FHIR_JSON, care_plan, consent, new_personnummer, run


def outcome(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    OperationOutcome.model_validate(body)
    return body["issue"][0]


def total(client, resource_type):
    return client.get(f"/fhir/{resource_type}").json()["total"]


def bad_personnummer(resource):
    resource = resource.copy()
    key = "patient" if resource["resourceType"] == "Consent" else "subject"
    resource[key] = {"identifier": {**resource[key]["identifier"], "value": "191212121213"}}
    return resource


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda r: "{not json", 400, "structure"),
        (lambda r: "[1, 2]", 400, "structure"),
        (lambda r: {**r, "resourceType": "Patient"}, 400, "invalid"),
        (lambda r: {**r, "unknownElement": 1}, 400, "structure"),
        (bad_personnummer, 422, "invalid"),
    ],
    ids=[
        "malformed-json",
        "not-an-object",
        "wrong-resource-type",
        "unknown-element",
        "bad-check-digit",
    ],
)
@pytest.mark.parametrize("resource_type", ["Consent", "CarePlan"])
def test_bad_resources_are_refused_and_nothing_is_written(
    system, resource_type, make, status, code
):
    client = system.consent if resource_type == "Consent" else system.sip
    resource = (consent if resource_type == "Consent" else care_plan)(new_personnummer())
    body = make(resource)
    before = total(client, resource_type)
    if isinstance(body, str):
        response = client.post(f"/fhir/{resource_type}", content=body, headers=FHIR_JSON)
    else:
        response = client.post(f"/fhir/{resource_type}", json=body, headers=FHIR_JSON)
    assert outcome(response, status)["code"] == code
    assert total(client, resource_type) == before


def test_domain_rules_name_themselves(system):
    plan = care_plan(new_personnummer())
    issue = outcome(system.sip.post("/fhir/CarePlan", json={**plan, "status": "active"}), 422)
    assert issue["details"]["text"] == "plan-starts-as-draft"
    local_author = {**plan, "author": {"identifier": {"system": "urn:local", "value": "x"}}}
    issue = outcome(system.sip.post("/fhir/CarePlan", json=local_author), 422)
    assert issue["details"]["text"] == "plan-starting-organization"
    unknown_category = consent(new_personnummer(), categories=("everything",))
    issue = outcome(system.consent.post("/fhir/Consent", json=unknown_category), 422)
    assert issue["details"]["text"] == "consent-category-required"


@pytest.mark.parametrize("resource_type", ["Consent", "CarePlan"])
@pytest.mark.parametrize(
    "path",
    [
        "/{type}/00000000-0000-0000-0000-000000000000",
        "/{type}/not-a-uuid",
        "/{type}/00000000-0000-0000-0000-000000000000/_history",
        "/{type}/00000000-0000-0000-0000-000000000000/_history/1",
    ],
)
def test_unknown_ids_are_404(system, resource_type, path):
    client = system.consent if resource_type == "Consent" else system.sip
    response = client.get("/fhir" + path.format(type=resource_type))
    assert outcome(response, 404)["code"] == "not-found"


def test_unknown_search_parameters_and_media_types_are_refused(system):
    assert outcome(system.sip.get("/fhir/CarePlan", params={"colour": "red"}), 400)
    assert outcome(system.consent.get("/fhir/Consent", params={"status": "maybe"}), 400)
    for name in ("care-team-organization", "responsible-organization"):
        refused = outcome(system.sip.get("/fhir/CarePlan", params={name: "Kommunen"}), 400)
        assert refused["diagnostics"].startswith(f"{name}: an HSA-id looks like")
    response = system.sip.post(
        "/fhir/CarePlan", content="<CarePlan/>", headers={"Content-Type": "application/fhir+xml"}
    )
    assert outcome(response, 415)["code"] == "not-supported"
    assert outcome(system.sip.get("/fhir/NoSuchType"), 404)


def test_an_unexpected_failure_is_a_500_outcome_that_prints_no_personnummer(
    system, capfd, caplog, monkeypatch
):
    personnummer = new_personnummer()

    def fail(**_):
        raise RuntimeError(f"database said no about {personnummer}")

    monkeypatch.setattr(system.sip_app.state.plans, "start", fail)  # undone after the test
    response = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    assert outcome(response, 500)["code"] == "exception"
    assert personnummer not in response.text
    printed = capfd.readouterr()
    assert "unexpected RuntimeError" in caplog.text
    assert personnummer not in printed.out + printed.err + caplog.text


def test_the_root_and_the_fhir_base_lead_a_newcomer_to_the_capability_statement(system):
    for url in (system.sip_url, system.consent_url):
        root = system.without_token.sip.get(f"{url}/")
        assert root.status_code == 200
        assert f"{url}/fhir/metadata" in root.text and "/docs" in root.text
        listed = system.without_token.sip.get(f"{url}/", headers={"Accept": "application/json"})
        assert listed.json()["capabilityStatement"] == f"{url}/fhir/metadata"
        assert listed.json()["version"] and "webClient" in listed.json()
        for base in ("/fhir", "/fhir/"):
            found = system.without_token.sip.get(f"{url}{base}", follow_redirects=True)
            assert found.status_code == 200
            assert found.json()["resourceType"] == "CapabilityStatement"


def test_a_missing_or_mistyped_parameter_is_named_with_the_type_it_needs(system):
    plan = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    ).json()["id"]
    missing = system.sip.post(
        f"/fhir/CarePlan/{plan}/$record-need",
        json={"resourceType": "Parameters", "parameter": []},
        headers=FHIR_JSON,
    )
    issue = missing.json()["issue"][0]
    assert missing.status_code == 400 and issue["code"] == "required"
    assert "'text', a string (valueString)" in issue["diagnostics"]
    assert issue["expression"] == ["Parameters.parameter.where(name='text')"]
    mistyped = system.sip.post(
        f"/fhir/CarePlan/{plan}/$record-need",
        json={"resourceType": "Parameters", "parameter": [{"name": "text", "valueInteger": 3}]},
        headers=FHIR_JSON,
    )
    issue = mistyped.json()["issue"][0]
    assert mistyped.status_code == 400
    assert "'text' is a string: give it as valueString" in issue["diagnostics"]
    assert "not valueInteger" in issue["diagnostics"]
    assert issue["expression"] == ["Parameters.parameter.where(name='text')"]


def test_the_api_documentation_needs_nothing_from_another_site(system):
    for url in (system.sip_url, system.consent_url):
        docs = system.without_token.sip.get(f"{url}/docs")
        assert docs.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", docs.text)
        assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
        for asset in assets:
            assert system.without_token.sip.get(f"{url}{asset}").status_code == 200, asset


def test_the_openapi_declares_the_bearer_token_every_closed_operation_needs(system):
    for url in (system.sip_url, system.consent_url):
        schema = system.without_token.sip.get(f"{url}/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        open_paths = {"/fhir/metadata", *smart.PATHS}  # what a client reads before its token
        for path in open_paths:
            assert schema["paths"][path]["get"]["security"] == []
        closed = [
            operation["security"]
            for path, operations in schema["paths"].items()
            if path not in open_paths
            for operation in operations.values()
        ]
        assert closed and all(security == [{"bearer": []}] for security in closed)


def test_a_refused_rule_names_the_parameter_to_change_as_well_as_the_rule(system):
    plan = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    ).json()["id"]
    refused = run(system.sip, plan, "assign-intervention", text="Hemtjänst", kind="support",
                  responsiblePrincipal="region", need="need-9")  # fmt: skip
    issue = refused.json()["issue"][0]
    assert refused.status_code == 409, refused.text
    assert issue["details"]["coding"][0]["code"] in ("known-need", "intervention-has-performer")
    assert issue["expression"][0].startswith("Parameters.parameter.where(name=")
    no_performer = run(system.sip, plan, "assign-intervention", text="Hemtjänst",
                       kind="support", responsiblePrincipal="region")  # fmt: skip
    issue = no_performer.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "intervention-has-performer"
    assert issue["expression"] == ["Parameters.parameter.where(name='performerOrganization')"]
