"""Every operation is declared once: its OperationDefinition is served and valid, the
CapabilityStatement names it where it resolves, OpenAPI describes every request body, and
the Parameters body is read strictly (null, unknown names and wrong types are 400)."""

from urllib.parse import urlsplit

import pytest
from fhir.resources.R4B.operationdefinition import OperationDefinition

from services.common.parameters import parameter_specs
from services.consent.routes.operations import DEFINED_OPERATIONS as CONSENT_DEFINED
from services.sip.routes.operations import DEFINED_OPERATIONS as SIP_DEFINED
from tests.fhir_data import FHIR_JSON, care_plan, consent, new_personnummer, parameters


def services(system):
    return (("sip", system.sip, SIP_DEFINED), ("consent", system.consent, CONSENT_DEFINED))


def input_names(definition):
    return [p["name"] for p in definition["parameter"] if p["use"] == "in"]


def test_every_operation_definition_is_served_valid_and_lists_what_is_parsed(system):
    for _, client, operations in services(system):
        listed = client.get("/fhir/OperationDefinition").json()
        assert listed["total"] == len(operations)
        for operation in operations:
            response = client.get(f"/fhir/OperationDefinition/{operation.id}")
            assert response.status_code == 200, (operation.id, response.text)
            definition = response.json()
            OperationDefinition.model_validate(definition)
            assert definition["code"] == operation.name
            assert definition["url"] == operation.url
            assert input_names(definition) == [
                s.name for s in parameter_specs(operation.parameters)
            ]
            by_url = client.get("/fhir/OperationDefinition", params={"url": operation.url}).json()
            assert [e["resource"]["id"] for e in by_url["entry"]] == [operation.id]


def test_the_capability_statement_names_definitions_that_resolve(system):
    for _, client, operations in services(system):
        statement = client.get("/fhir/metadata").json()
        named = [
            operation
            for resource in statement["rest"][0]["resource"]
            for operation in resource.get("operation", [])
        ]
        assert len(named) == len(operations)
        for entry in named:
            response = client.get(urlsplit(entry["definition"]).path)
            assert response.status_code == 200, entry
            assert response.json()["code"] == entry["name"]
            found = client.get("/fhir/OperationDefinition", params={"url": entry["definition"]})
            assert found.json()["total"] == 1


def test_openapi_has_a_request_body_schema_for_every_post(system):
    for service, client, _ in services(system):
        paths = client.get("/openapi.json").json()["paths"]
        posts = {path: methods["post"] for path, methods in paths.items() if "post" in methods}
        assert posts, service
        for path, post in posts.items():
            content = post.get("requestBody", {}).get("content", {})
            assert content and all("schema" in c for c in content.values()), (service, path)


@pytest.fixture
def plan_id(system):
    response = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    )
    return response.json()["id"]


def version_of(system, plan_id):
    return system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["meta"]["versionId"]


def refused(system, plan_id, operation, body):
    before = version_of(system, plan_id)
    response = system.sip.post(
        f"/fhir/CarePlan/{plan_id}/${operation}", json=body, headers=FHIR_JSON
    )
    assert response.status_code == 400, response.text
    assert version_of(system, plan_id) == before
    return response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("name", ["text", "wishes"])
def test_a_null_parameter_value_is_refused_and_nothing_is_written(system, plan_id, name):
    body = parameters(text="Jag vill klara mig hemma")
    body["parameter"] = [p for p in body["parameter"] if p["name"] != name]
    body["parameter"].append({"name": name, "valueString": None})
    assert f"'{name}'" in refused(system, plan_id, "record-need", body)


def test_an_unknown_parameter_is_refused_by_name(system, plan_id):
    body = parameters(text="Jag vill klara mig hemma", mood="glad")
    assert "'mood'" in refused(system, plan_id, "record-need", body)


@pytest.mark.parametrize(
    ("operation", "parameter"),
    [
        ("record-need", {"name": "text", "valueBoolean": True}),
        ("record-need", {"name": "text", "valueString": 42}),
        ("set-follow-up", {"name": "date", "valueDate": "tomorrow"}),
        ("record-meeting", {"name": "approvedChanges", "valueBoolean": "yes"}),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(system, plan_id, operation, parameter):
    body = {"resourceType": "Parameters", "parameter": [parameter]}
    assert f"'{parameter['name']}'" in refused(system, plan_id, operation, body)


def test_a_parameter_given_twice_where_once_is_allowed_is_refused(system, plan_id):
    body = parameters(text=["Ett", "Två"])
    assert "'text'" in refused(system, plan_id, "record-need", body)


def test_the_consent_operations_run_through_the_same_reading(system):
    consent_id = system.consent.post(
        "/fhir/Consent", json=consent(new_personnummer()), headers=FHIR_JSON
    ).json()["id"]
    path = f"/fhir/Consent/{consent_id}/$withdraw"
    without_reason = system.consent.post(path, json={"resourceType": "Parameters"})
    assert without_reason.status_code == 422
    assert without_reason.json()["issue"][0]["details"]["text"] == "reason"
    null_reason = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueString": None}],
    }
    assert system.consent.post(path, json=null_reason).status_code == 400
    unknown = {"resourceType": "Parameters", "parameter": [{"name": "why", "valueString": "x"}]}
    assert "'why'" in system.consent.post(path, json=unknown).json()["issue"][0]["diagnostics"]
    assert system.consent.get(f"/fhir/Consent/{consent_id}").json()["meta"]["versionId"] == "1"


def test_as_of_reads_its_instant_from_the_query(system, plan_id):
    assert system.sip.get(f"/fhir/CarePlan/{plan_id}/$as-of").status_code == 400
    bad = system.sip.get(f"/fhir/CarePlan/{plan_id}/$as-of", params={"instant": "soon"})
    assert bad.status_code == 400 and "'instant'" in bad.json()["issue"][0]["diagnostics"]
    assert (
        system.sip.get(f"/fhir/CarePlan/{plan_id}/$as-of", params={"instant": "2099-01-01"}).json()[
            "type"
        ]
        == "collection"
    )
