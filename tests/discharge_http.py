"""Stays over HTTP for the discharge tests: staff of the hospital's ward, primary care and the
municipality, the Encounter operations, and a stay walked through every one of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.sip.discharge.fhir import EXT_STAY_STATUS
from tests.fhir_data import FHIR_JSON, MUNICIPALITY, REGION, consent, parameters

PRIMARY = "SE2321000032-P0001"
WARD, VARDCENTRAL, SOCIAL = "SE2321000032-WARD7", "SE2321000032-PVC1", "SE2120000357-KSOC1"
STAFF_SCOPES = ("user/Encounter.rus", "user/CarePlan.rus", "user/*.rs")


def staff(system: Any, organization, unit, role="professional"):
    return system.as_caller(role, organization, unit=unit, scopes=STAFF_SCOPES).sip


def step(client, stay_id, operation, headers=None, **values):
    return client.post(
        f"/fhir/Encounter/{stay_id}/${operation}",
        json=parameters(**values),
        headers={**FHIR_JSON, **(headers or {})},
    )


def extension(resource, url):
    return next((e for e in resource.get("extension", []) if e["url"] == url), None)


def status(resource):
    return extension(resource, EXT_STAY_STATUS)["valueCode"]


def admit(client, personnummer, **more):
    body = parameters(ward=WARD, **more)
    body["parameter"].append(
        {"name": "patient",
         "valueIdentifier": {"system": PERSONNUMMER_SYSTEM, "value": personnummer}}
    )  # fmt: skip
    return client.post("/fhir/Encounter/$admit", json=body, headers=FHIR_JSON)


def consent_to_the_stay(system: Any, personnummer: str) -> str:
    """The person's consent to the hospital, primary care and the municipality: its id."""
    given = system.consent.post(
        "/fhir/Consent",
        json=consent(personnummer, organizations=(REGION, MUNICIPALITY, PRIMARY)),
        headers=FHIR_JSON,
    )
    assert given.status_code == 201, given.text
    return given.json()["id"]


def a_stays_whole_life(system: Any, personnummer: str) -> str:
    """Every operation of the stay once, each answered 200: its id."""
    consent_to_the_stay(system, personnummer)
    ward = staff(system, REGION, WARD)
    vc = staff(system, PRIMARY, VARDCENTRAL)
    municipality = staff(system, MUNICIPALITY, SOCIAL)
    admitted = admit(ward, personnummer)
    assert admitted.status_code == 200, admitted.text
    stay_id = admitted.json()["id"]
    estimate = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    recipients = [
        {"organization": PRIMARY, "unit": VARDCENTRAL, "kind": "primary-care"},
        {"organization": MUNICIPALITY, "unit": SOCIAL, "kind": "social-services"},
    ]
    steps = [
        (ward, "judge-care-needed", {"principal": ["region", "municipality"]}),
        (ward, "send-admission-notice", {"recipient": recipients, "estimatedDischarge": estimate}),
        (vc, "confirm-receipt", {}),
        (municipality, "confirm-receipt", {}),
        (vc, "name-care-contact", {"name": "Sköterska Svensson"}),
        (ward, "notify-ready", {}),
        (ward, "withdraw-ready", {"reason": "feber", "judgement": "LSU 4 kap."}),
        (ward, "notify-ready", {}),
        (vc, "call-sip", {"title": "SIP inför utskrivning"}),
        (ward, "record-outpatient-care-unavailable", {"reason": "ingen hemsjukvård ännu"}),
        (ward, "transfer-information", {}),
        (ward, "discharge", {}),
    ]
    for client, operation, values in steps:
        answer = step(client, stay_id, operation, **values)
        assert answer.status_code == 200, (operation, answer.text)
    return stay_id
