"""Retrying safely: business identifiers, conditional create (`If-None-Exist`) and `If-Match`,
over HTTP on both backends (services/common/business_identifiers.py)."""

from concurrent.futures import ThreadPoolExecutor
from itertools import count
from typing import Any
from urllib.parse import quote

import pytest

from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    parameters,
)

SOURCE = "https://journal.example.se/sip"
_serial = count(1)


def new_identifier() -> dict[str, str]:
    return {"system": SOURCE, "value": f"plan-{next(_serial)}-{new_personnummer()}"}


def identified_plan(identifier: dict[str, str], organization: str = REGION) -> dict[str, Any]:
    return {**care_plan(new_personnummer(), organization), "identifier": [identifier]}


def condition(identifier: dict[str, str]) -> dict[str, str]:
    return {
        **FHIR_JSON,
        "If-None-Exist": f"identifier={identifier['system']}|{identifier['value']}",
    }


def expression_of(response: Any) -> list[str]:
    assert response.headers["content-type"].startswith("application/fhir+json")
    return [e for issue in response.json()["issue"] for e in issue.get("expression", [])]


def search_ids(client: Any, resource_type: str, identifier: dict[str, str]) -> list[str]:
    token = f"{identifier['system']}|{identifier['value']}"
    found = client.get(f"/fhir/{resource_type}", params={"identifier": token})
    assert found.status_code == 200, found.text
    posted = client.post(
        f"/fhir/{resource_type}/_search",
        data={"identifier": token},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200, posted.text
    ids = [entry["resource"]["id"] for entry in found.json().get("entry", [])]
    assert ids == [entry["resource"]["id"] for entry in posted.json().get("entry", [])]
    return ids


def test_concurrent_conditional_creates_make_one_plan(system):
    identifier = new_identifier()
    body = identified_plan(identifier)
    clients = [system.as_caller().sip for _ in range(10)]

    def create(client: Any) -> Any:
        return client.post("/fhir/CarePlan", json=body, headers=condition(identifier))

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(create, clients))
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    (plan_id,) = ids
    for answer in answers:
        assert answer.headers["Location"] == f"{system.sip_url}/fhir/CarePlan/{plan_id}/_history/1"
        assert answer.headers["ETag"] == 'W/"1"'
        assert answer.json()["identifier"] == [identifier]
    assert search_ids(system.sip, "CarePlan", identifier) == [plan_id]


def test_the_second_of_two_racing_creates_writes_nothing(system):
    """The race itself, past the look-up both racers make first: the claim is inserted with
    the creation event, so the second transaction fails whole and names the first plan."""
    from contracts.actor import Actor
    from services.common.business_identifiers import (
        IdentifierClaims,
        IdentifierTaken,
        identifiers_from_fhir,
    )
    from services.common.fhir_time import now
    from services.sip.domain import Plan
    from services.sip.fhir_mapping import plan_started_from_fhir

    identifier = new_identifier()
    body = identified_plan(identifier)
    actor = Actor(subject="coordinator-1", role="coordinator", organization=REGION)
    app = system.sip_app.state
    claims = IdentifierClaims(
        "CarePlan", REGION, identifiers_from_fhir(body, "CarePlan"), app.index.engine
    )
    first, second = (
        Plan(**plan_started_from_fhir(body, actor, now()), identifiers=[identifier])
        for _ in range(2)
    )
    claims.save(app.plans, first)
    with pytest.raises(IdentifierTaken) as taken:
        claims.save(app.plans, second)
    assert taken.value.resource_id == first.id
    assert system.sip.get(f"/fhir/CarePlan/{second.id}").status_code == 404
    assert system.sip.get(f"/fhir/CarePlan/{first.id}").json()["identifier"] == [identifier]


def test_a_plain_create_with_a_used_identifier_is_a_conflict_naming_it(system):
    identifier = new_identifier()
    first = system.sip.post("/fhir/CarePlan", json=identified_plan(identifier), headers=FHIR_JSON)
    assert first.status_code == 201, first.text
    again = system.sip.post("/fhir/CarePlan", json=identified_plan(identifier), headers=FHIR_JSON)
    assert again.status_code == 409, again.text
    assert expression_of(again) == ["CarePlan.identifier"]
    assert first.json()["id"] not in again.text
    assert search_ids(system.sip, "CarePlan", identifier) == [first.json()["id"]]
    encoded = quote(f"{identifier['system']}|{identifier['value']}", safe="")
    retried = system.sip.post(
        "/fhir/CarePlan",
        json=identified_plan(identifier),
        headers={**FHIR_JSON, "If-None-Exist": f"identifier={encoded}"},
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == first.json()["id"]


def test_another_organisation_neither_collides_with_nor_learns_of_the_identifier(system):
    identifier = new_identifier()
    ours = system.sip.post(
        "/fhir/CarePlan", json=identified_plan(identifier), headers=condition(identifier)
    )
    assert ours.status_code == 201, ours.text
    outsider = system.as_caller(organization=OTHER_REGION).sip
    assert search_ids(outsider, "CarePlan", identifier) == []
    theirs = outsider.post(
        "/fhir/CarePlan",
        json=identified_plan(identifier, OTHER_REGION),
        headers=condition(identifier),
    )
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != ours.json()["id"]
    assert ours.json()["id"] not in theirs.text
    assert search_ids(outsider, "CarePlan", identifier) == [theirs.json()["id"]]
    assert search_ids(system.sip, "CarePlan", identifier) == [ours.json()["id"]]


@pytest.mark.parametrize(
    "identifiers",
    [
        [{"system": "not a uri", "value": "1"}],
        [{"system": "journal", "value": "1"}],
        [{"system": SOURCE, "value": ""}],
        [{"system": SOURCE, "value": " padded"}],
        [{"system": SOURCE, "value": "x" * 129}],
        [{"system": SOURCE, "value": "tab\there"}],
        [{"system": SOURCE, "value": 12}],
        [{"system": "http://electronichealth.se/identifier/personnummer", "value": "1"}],
        [{"system": SOURCE, "value": "1"}, {"system": SOURCE, "value": "1"}],
        [{"system": SOURCE, "value": "1", "use": "official"}],
        {"system": SOURCE, "value": "1"},
    ],
)
def test_malformed_identifiers_are_refused_by_name(system, identifiers):
    body = {**care_plan(new_personnummer()), "identifier": identifiers}
    refused = system.sip.post("/fhir/CarePlan", json=body, headers=FHIR_JSON)
    assert refused.status_code == 400, refused.text
    assert all(e.startswith("CarePlan.identifier") for e in expression_of(refused))
    assert expression_of(refused)


@pytest.mark.parametrize(
    "header",
    [
        "identifier=",
        "identifier=no-bar",
        f"subject:identifier={SOURCE}|x",
        f"identifier={SOURCE}|other",  # not the posted plan's own identifier
        f"identifier={SOURCE}|x&status=draft",
        "status=draft",
    ],
)
def test_malformed_if_none_exist_is_refused_by_name(system, header):
    identifier = {"system": SOURCE, "value": "x"}
    body = {**care_plan(new_personnummer()), "identifier": [identifier]}
    refused = system.sip.post(
        "/fhir/CarePlan", json=body, headers={**FHIR_JSON, "If-None-Exist": header}
    )
    assert refused.status_code == 400, refused.text
    assert expression_of(refused) == ["If-None-Exist"]


def test_a_malformed_identifier_search_is_refused(system):
    for token in ("no-bar", "|x", f"{SOURCE}|"):
        refused = system.sip.get("/fhir/CarePlan", params={"identifier": token})
        assert refused.status_code == 400, refused.text


def test_plans_without_identifiers_have_none(system):
    plain = system.sip.post("/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON)
    assert plain.status_code == 201
    assert "identifier" not in plain.json()


def test_a_retried_operation_with_the_same_if_match_is_applied_once(system):
    created = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    )
    plan_id, etag = created.json()["id"], created.headers["ETag"]
    body = parameters(text="Behöver stöd i skolan")
    path = f"/fhir/CarePlan/{plan_id}/$record-need"
    first = system.sip.post(path, json=body, headers={**FHIR_JSON, "If-Match": etag})
    assert first.status_code == 200, first.text
    retried = system.sip.post(path, json=body, headers={**FHIR_JSON, "If-Match": etag})
    assert retried.status_code == 412, retried.text
    plan = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()
    assert plan["meta"]["versionId"] == "2"
    assert len(plan.get("contained", [])) == 1


def identified_consent(identifier: dict[str, str]) -> dict[str, Any]:
    return {
        **consent(new_personnummer(), organizations=(REGION, MUNICIPALITY)),
        "identifier": [identifier],
    }


def test_concurrent_conditional_consent_creates_make_one_consent(system):
    identifier = new_identifier()
    body = identified_consent(identifier)
    clients = [system.as_caller().consent for _ in range(10)]

    def create(client: Any) -> Any:
        return client.post("/fhir/Consent", json=body, headers=condition(identifier))

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(create, clients))
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    (consent_id,) = ids
    for answer in answers:
        location = f"{system.consent_url}/fhir/Consent/{consent_id}/_history/1"
        assert answer.headers["Location"] == location
        assert answer.json()["identifier"] == [identifier]
    assert search_ids(system.consent, "Consent", identifier) == [consent_id]
    again = system.consent.post("/fhir/Consent", json=body, headers=FHIR_JSON)
    assert again.status_code == 409, again.text
    assert expression_of(again) == ["Consent.identifier"]


def test_malformed_consent_identifiers_are_refused_by_name(system):
    body = {**consent(new_personnummer()), "identifier": [{"system": "x", "value": "1"}]}
    refused = system.consent.post("/fhir/Consent", json=body, headers=FHIR_JSON)
    assert refused.status_code == 400, refused.text
    assert expression_of(refused) == ["Consent.identifier[0]"]
    identifier = new_identifier()
    refused = system.consent.post(
        "/fhir/Consent",
        json=identified_consent(identifier),
        headers={**FHIR_JSON, "If-None-Exist": "identifier=nope"},
    )
    assert refused.status_code == 400, refused.text
    assert expression_of(refused) == ["If-None-Exist"]


def test_the_capability_statements_say_so(system):
    for client, resource_type in ((system.sip, "CarePlan"), (system.consent, "Consent")):
        statement = client.get("/fhir/metadata").json()
        (resource,) = [r for r in statement["rest"][0]["resource"] if r["type"] == resource_type]
        assert resource["conditionalCreate"] is True
        assert "identifier" in {p["name"] for p in resource["searchParam"]}
