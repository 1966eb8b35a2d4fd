"""FHIR resources the tests post, built the way a record system would send them."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

from contracts.canonical import (
    CONSENT_CATEGORY_SYSTEM,
    CONSENT_SCOPE_SYSTEM,
    EXT_ORGANIZATION_KIND,
    LOINC_PATIENT_CONSENT,
    LOINC_SYSTEM,
)
from contracts.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM, with_check_digit

REGION = "SE2321000032-R0001"
MUNICIPALITY = "SE2120000357-K0001"
OTHER_REGION = "SE2321000016-X9999"
FHIR_JSON = {"Content-Type": "application/fhir+json"}

_issued = itertools.count()
SERIALS_A_DAY = 900  # 100-999: the birth number's three digits before the check digit


def new_personnummer(birth_date: str = "19800101") -> str:
    """A valid personnummer that no other test in this process uses: the serials of the
    birth date, then of the days after it (a process makes more than 900 people)."""
    days, serial = divmod(next(_issued), SERIALS_A_DAY)
    born = date.fromisoformat(f"{birth_date[:4]}-{birth_date[4:6]}-{birth_date[6:8]}")
    return with_check_digit(f"{born + timedelta(days=days):%Y%m%d}{100 + serial:03d}")


def person(personnummer: str) -> dict[str, str]:
    return {"system": PERSONNUMMER_SYSTEM, "value": personnummer}


def started_by_region(
    personnummer: str,
    *,
    at: Any,
    by: dict[str, Any],
    title: str | None = "Plan",
    region: str,
) -> dict[str, Any]:
    """What the SIP application's `start` (or `Plan`) takes for a plan a region starts on its
    own unit's initiative, as a test writing through the application gives it."""
    return {
        "subject": person(personnummer),
        "starting_organization": region,
        "starting_organization_kind": "region",
        "initiative": "region-unit",
        "title": title,
        "description": None,
        "started_at": at,
        "started_by": by,
    }


def consent(
    personnummer: str,
    *,
    organizations: tuple[str, ...] = (REGION, MUNICIPALITY),
    categories: tuple[str, ...] = ("sip", "sip-plan"),
    period: dict[str, str] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC_SYSTEM, "code": LOINC_PATIENT_CONSENT}]},
            *({"coding": [{"system": CONSENT_CATEGORY_SYSTEM, "code": c}]} for c in categories),
        ],
        "patient": {"identifier": person(personnummer)},
        "performer": [{"identifier": person(personnummer)}],
        "organization": [
            {"identifier": {"system": HSA_ID_SYSTEM, "value": hsa_id}} for hsa_id in organizations
        ],
        "provision": {"period": period or {"start": "2026-01-01"}},
    }
    return resource


def care_plan(personnummer: str, organization: str = REGION) -> dict[str, Any]:
    kind = "municipality" if organization == MUNICIPALITY else "region"
    return {
        "resourceType": "CarePlan",
        "status": "draft",
        "intent": "plan",
        "title": "SIP",
        "subject": {"identifier": person(personnummer)},
        "author": {
            "identifier": {"system": HSA_ID_SYSTEM, "value": organization},
            "extension": [{"url": EXT_ORGANIZATION_KIND, "valueCode": kind}],
        },
    }


def parameters(**values: Any) -> dict[str, Any]:
    """A Parameters body: str → valueString, bool → valueBoolean, HSA-ids → valueIdentifier,
    dates (YYYY-MM-DD) → valueDate, lists → the parameter repeated."""
    items = []
    for name, value in values.items():
        for single in value if isinstance(value, list) else [value]:
            items.append({"name": name, **_typed(single)})
    return {"resourceType": "Parameters", "parameter": items}


def _typed(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, dict):
        return {"part": parameters(**value)["parameter"]}
    if isinstance(value, (int, float)):
        return {"valueDecimal": value}
    if isinstance(value, str) and value.startswith("SE") and value[2:4].isdigit():
        return {"valueIdentifier": {"system": HSA_ID_SYSTEM, "value": value}}
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return {"valueDate": value}
    if isinstance(value, str) and "T" in value and value[:4].isdigit():
        return {"valueDateTime": value}
    return {"valueString": value}


def run(client: Any, plan_id: str, operation: str, **values: Any) -> Any:
    return client.post(
        f"/fhir/CarePlan/{plan_id}/${operation}", json=parameters(**values), headers=FHIR_JSON
    )


# The region's entry that prepare_for_activation records.
REGION_NEED = "Jag vill klara mig hemma"


def sees_region_entries(client: Any, plan_id: str) -> bool:
    """Whether this reader of the plan sees the region's entries in it (the frame it sees
    whenever it takes part; the entries only where consent allows)."""
    response = client.get(f"/fhir/CarePlan/{plan_id}")
    assert response.status_code == 200, response.text
    return REGION_NEED in response.text


def prepare_for_activation(
    client: Any,
    plan_id: str,
    *,
    region: str = REGION,
    municipality: str = MUNICIPALITY,
    municipality_name: str | None = "Eskilstuna kommun",
) -> None:
    """What a plan needs before it may be activated, done as a region coordinator would: the
    municipality invited (under `municipality_name`, if any), a need, the municipality's
    intervention for it, the region's overall responsibility, a follow-up."""
    invitation = {"organization": municipality, "kind": "municipality"}
    if municipality_name is not None:
        invitation["name"] = municipality_name
    steps = [
        ("invite-organization", invitation),
        ("record-need", {"text": REGION_NEED}),
        (
            "assign-intervention",
            {
                "text": "Hemtjänst",
                "kind": "support",
                "need": "need-1",
                "performerOrganization": municipality,
                "responsiblePrincipal": "municipality",
                "responsibleOrganization": municipality,
            },
        ),
        ("assign-overall-responsibility", {"organization": region}),
        ("set-follow-up", {"date": "2027-03-01"}),
    ]
    for operation, values in steps:
        response = run(client, plan_id, operation, **values)
        assert response.status_code == 200, (operation, response.text)


def withdrawal(reason: str = "Jag vill inte längre") -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": reason}]}


def whole_feed(client, **params):
    """Every page of the feed up to the head the first page saw: (events, raw bodies)."""
    events, bodies, after, head = [], [], 0, None
    while head is None or after < head:
        response = client.get("/events", params={"after": after, "limit": 1000, **params})
        assert response.status_code == 200, response.text
        bodies.append(response.text)
        page = response.json()
        head = page["head"] if head is None else head
        events += [e for e in page["events"] if e["position"] <= head]
        after = page["next"]
    return events, "".join(bodies)


def created_or_ok(response: Any) -> Any:
    """The body of a 200 or 201 answer (fails the test with the answer otherwise)."""
    assert response.status_code in (200, 201), response.text
    return response.json()


def active_plan(
    system: Any, organizations: tuple[str, ...] = (REGION, MUNICIPALITY)
) -> tuple[str, str]:
    """An active plan of the region's (which holds the overall responsibility), the person's
    consent covering `organizations`; the person takes part as participant-1, a municipal
    professional as participant-2, and goal-1 is set: (plan id, personnummer)."""
    personnummer = new_personnummer()
    sip = system.sip
    created_or_ok(
        system.consent.post(
            "/fhir/Consent",
            json=consent(personnummer, organizations=organizations),
            headers=FHIR_JSON,
        )
    )
    plan_id = created_or_ok(
        sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    )["id"]
    prepare_for_activation(sip, plan_id)
    created_or_ok(run(sip, plan_id, "add-participant", kind="person", name="Tolvan"))
    created_or_ok(
        run(sip, plan_id, "add-participant", kind="professional", organization=MUNICIPALITY)
    )
    created_or_ok(run(sip, plan_id, "set-goal", text="Handla själv", need="need-1"))
    created_or_ok(sip.post(f"/fhir/CarePlan/{plan_id}/$activate"))
    return plan_id, personnummer
