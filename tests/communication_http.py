"""Messages over HTTP for the Communication tests: a stay of the region's ward told to primary
care and the municipality, and a plan of the region with the municipality invited, each with
the person's consent; a message posted as a record system would post it."""

from __future__ import annotations

from typing import Any

from contracts.identifiers import HSA_ID_SYSTEM
from tests.discharge_http import (
    PRIMARY,
    consent_to_the_stay,
    noticed_through_the_application,
    stays_of,
)
from tests.fhir_data import FHIR_JSON, MUNICIPALITY, care_plan, consent, run

MUNICIPAL_UNIT = "SE2120000357-KSOC1"  # units of MUNICIPALITY and PRIMARY
PRIMARY_UNIT = "SE2321000032-PVC1"


def a_stay(system: Any, personnummer: str) -> dict[str, str]:
    """A stay of the region's ward, its notice sent to primary care and the municipality, on
    the person's consent to all three: {"id", "ward", "consent"}."""
    consent_id = consent_to_the_stay(system, personnummer)
    stay_id, ward = noticed_through_the_application(
        stays_of(system), personnummer, primary_care=(PRIMARY, PRIMARY_UNIT),
        municipality=(MUNICIPALITY, MUNICIPAL_UNIT), judgement=None,
    )  # fmt: skip
    return {"id": stay_id, "ward": ward, "consent": consent_id}


def a_plan(system: Any, personnummer: str) -> dict[str, str]:
    """A draft plan of the region with the municipality invited, on the person's consent to
    both: {"id", "consent"}."""
    given = system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    assert given.status_code == 201, given.text
    plan = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    assert plan.status_code == 201, plan.text
    invited = run(system.sip, plan.json()["id"], "invite-organization",
                  organization=MUNICIPALITY, kind="municipality")  # fmt: skip
    assert invited.status_code == 200, invited.text
    return {"id": plan.json()["id"], "consent": given.json()["id"]}


def hsa(value: str) -> dict[str, Any]:
    return {"identifier": {"system": HSA_ID_SYSTEM, "value": value}}


def message(
    text: str = "Patienten behöver hjälp med läkemedel hemma",
    *,
    stay: str | None = None,
    plan: str | None = None,
    to: tuple[str, ...] = (MUNICIPAL_UNIT,),
    **more: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "status": "completed",
        "recipient": [hsa(value) for value in to],
        "payload": [{"contentString": text}],
        **more,
    }
    if stay is not None:
        resource["encounter"] = {"reference": f"Encounter/{stay}"}
    if plan is not None:
        resource["basedOn"] = [{"reference": f"CarePlan/{plan}"}]
    return resource


def send(client: Any, resource: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/fhir/Communication", json=resource, headers={**FHIR_JSON, **(headers or {})}
    )


def mark_read(client: Any, message_id: str, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        f"/fhir/Communication/{message_id}/$mark-read",
        json={"resourceType": "Parameters"},
        headers={**FHIR_JSON, **(headers or {})},
    )


def found(client: Any, **params: str) -> list[str]:
    answer = client.post("/fhir/Communication/_search", data=params)
    assert answer.status_code == 200, answer.text
    return [entry["resource"]["id"] for entry in answer.json().get("entry", [])]
