"""The consent service's FHIR API over HTTP, on SQLite and on PostgreSQL."""

import time

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent

from contracts.canonical import CONSENT_CATEGORY_SYSTEM, EXT_CONSENT_WITHDRAWAL
from contracts.consent_decision import ConsentCheckRequest, ConsentDecision
from contracts.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM
from services.common.fhir_time import fhir_instant, now
from services.common.settings import SERVICE_HSA_ID, SERVICE_SUBJECT
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    consent,
    new_personnummer,
    withdrawal,
)


def give(system, personnummer, **kwargs):
    response = system.consent.post(
        "/fhir/Consent", json=consent(personnummer, **kwargs), headers=FHIR_JSON
    )
    assert response.status_code == 201, response.text
    return response


def test_a_given_consent_is_a_valid_r4_consent_at_version_1(system):
    personnummer = new_personnummer()
    response = give(system, personnummer)
    body = response.json()
    Consent.model_validate(body)
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["ETag"] == 'W/"1"'
    location = f"{system.consent_url}/fhir/Consent/{body['id']}/_history/1"
    assert response.headers["Location"] == location
    assert body["status"] == "active"
    assert body["patient"]["identifier"] == {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
    read = system.consent.get(f"/fhir/Consent/{body['id']}")
    assert read.status_code == 200
    assert read.json() == body


def test_withdrawal_is_a_new_version_and_the_history_keeps_both(system):
    consent_id = give(system, new_personnummer()).json()["id"]
    withdrawn = system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal("Flyttar"), headers=FHIR_JSON
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.headers["ETag"] == 'W/"2"'
    assert withdrawn.json()["status"] == "inactive"
    extension = next(e for e in withdrawn.json()["extension"] if e["url"] == EXT_CONSENT_WITHDRAWAL)
    assert {"url": "reason", "valueString": "Flyttar"} in extension["extension"]

    history = system.consent.get(f"/fhir/Consent/{consent_id}/_history").json()
    Bundle.model_validate(history)
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["resource"]["status"] for e in history["entry"]] == ["inactive", "active"]
    version_1 = system.consent.get(f"/fhir/Consent/{consent_id}/_history/1")
    assert version_1.json()["status"] == "active"
    assert version_1.headers["ETag"] == 'W/"1"'
    assert system.consent.get(f"/fhir/Consent/{consent_id}/_history/3").status_code == 404

    again = system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert again.status_code == 409
    assert again.json()["issue"][0]["details"]["text"] == "consent-withdrawal-is-final"
    assert system.consent.get(f"/fhir/Consent/{consent_id}").headers["ETag"] == 'W/"2"'


def test_withdraw_with_a_stale_if_match_is_refused(system):
    consent_id = give(system, new_personnummer()).json()["id"]
    stale = system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw",
        json=withdrawal(),
        headers={**FHIR_JSON, "If-Match": 'W/"7"'},
    )
    assert stale.status_code == 412
    assert system.consent.get(f"/fhir/Consent/{consent_id}").json()["status"] == "active"


def test_search_by_patient_identifier_and_status(system):
    personnummer, other = new_personnummer(), new_personnummer()
    first = give(system, personnummer).json()["id"]
    second = give(system, personnummer).json()["id"]
    give(system, other)
    system.consent.post(f"/fhir/Consent/{first}/$withdraw", json=withdrawal(), headers=FHIR_JSON)

    def ids(**query):
        bundle = system.consent.get("/fhir/Consent", params=query).json()
        Bundle.model_validate(bundle)
        return {entry["resource"]["id"] for entry in bundle["entry"]}

    patient = f"{PERSONNUMMER_SYSTEM}|{personnummer}"
    assert ids(**{"patient:identifier": patient}) == {first, second}
    assert ids(**{"patient:identifier": patient, "status": "active"}) == {second}
    assert ids(**{"patient:identifier": patient, "status": "inactive"}) == {first}
    by_post = system.consent.post(
        "/fhir/Consent/_search", data={"patient:identifier": patient, "status": "active"}
    ).json()
    assert [entry["resource"]["id"] for entry in by_post["entry"]] == [second]


def test_search_by_actor_category_and_last_updated(system):
    personnummer = new_personnummer()
    patient = f"{PERSONNUMMER_SYSTEM}|{personnummer}"
    both = give(system, personnummer).json()["id"]
    before_second = fhir_instant(now())
    time.sleep(0.01)
    health = give(
        system, personnummer, organizations=(REGION, OTHER_REGION), categories=("health-care",)
    ).json()["id"]

    def ids(**query):
        response = system.consent.get("/fhir/Consent", params={"patient:identifier": patient,
                                                                **query})  # fmt: skip
        assert response.status_code == 200, response.text
        return {entry["resource"]["id"] for entry in response.json()["entry"]}

    assert ids(actor=MUNICIPALITY) == {both}
    assert ids(actor=REGION) == {both, health}
    assert ids(category="health-care") == {health}
    assert ids(category="sip-plan", actor=OTHER_REGION) == set()
    assert ids(_lastUpdated=f"gt{before_second}") == {health}
    assert ids(_lastUpdated=f"le{before_second}") == {both}
    assert ids(category=f"{CONSENT_CATEGORY_SYSTEM}|health-care") == {health}
    assert ids(actor=f"{HSA_ID_SYSTEM}|{OTHER_REGION}") == {health}
    for name, value in (("category", "nonsense-code"), ("category", "http://other|sip-plan"),
                        ("actor", "not-an-hsa-id")):  # fmt: skip
        refused = system.consent.get("/fhir/Consent", params={name: value})
        assert refused.status_code == 400, (name, value)
        assert name in refused.json()["issue"][0]["diagnostics"]


def test_check_permits_on_a_covering_consent_and_denies_otherwise(system):
    personnummer = new_personnummer()
    consent_id = give(system, personnummer).json()["id"]
    # The SIP service asks on behalf of the organisation that reads (a trusted peer).
    integration = system.as_caller(
        "integration", organization=SERVICE_HSA_ID, subject=SERVICE_SUBJECT
    ).consent

    def decide(actor, category="sip-plan"):
        request = ConsentCheckRequest(
            patient_system=PERSONNUMMER_SYSTEM,
            patient_value=personnummer,
            actor=actor,
            source=REGION,
            category=category,
        )
        response = integration.post(
            "/fhir/Consent/$check", json=request.to_parameters(), headers=FHIR_JSON
        )
        assert response.status_code == 200, response.text
        return ConsentDecision.from_parameters(response.json())

    permitted = decide(MUNICIPALITY)
    assert (permitted.decision, permitted.consents) == ("permit", (consent_id,))
    assert decide(OTHER_REGION).decision == "deny"
    assert decide(MUNICIPALITY, category="health-care").decision == "deny"
    system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    denied = decide(MUNICIPALITY)
    assert (denied.decision, denied.reason, denied.consents) == ("deny", "not permitted", ())


def test_an_expired_consent_no_longer_counts(system):
    personnummer = new_personnummer()
    give(system, personnummer, period={"start": "2025-01-01", "end": "2025-12-31"})
    request = ConsentCheckRequest(
        patient_system=PERSONNUMMER_SYSTEM,
        patient_value=personnummer,
        actor=REGION,
        source=REGION,
        category="sip-plan",
    )
    integration = system.as_caller("integration").consent
    decision = ConsentDecision.from_parameters(
        integration.post("/fhir/Consent/$check", json=request.to_parameters()).json()
    )
    assert (decision.decision, decision.reason) == ("deny", "not permitted")
    # The whole reason is in the access log, for the custodian's auditor.
    log = system.as_caller("auditor").consent.get(
        "/fhir/AuditEvent", params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}
    )
    reasons = [e["resource"].get("outcomeDesc", "") for e in log.json()["entry"]]
    assert any("not in force" in reason for reason in reasons), reasons
