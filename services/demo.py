"""A small, realistic demo data set, loaded through the services' own FHIR APIs.

The personnummer are Skatteverket-style test numbers (serial numbers 98x, which are never
issued to real people); the HSA-ids are made-up ids of the right form.
"""

from __future__ import annotations

import httpx

from contracts.canonical import (
    CONSENT_CATEGORY_SYSTEM,
    CONSENT_SCOPE_SYSTEM,
    EXT_ORGANIZATION_KIND,
    LOINC_PATIENT_CONSENT,
    LOINC_SYSTEM,
)
from contracts.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM
from services.common.auth.tokens import DevIssuer, default_scopes
from services.common.demo_identities import (
    MUNICIPALITY,
    MUNICIPALITY_NAME,
    PEOPLE,
    REGION,
    DemoPerson,
)

FHIR = {"Content-Type": "application/fhir+json"}


def consent_body(personnummer: str) -> dict:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC_SYSTEM, "code": LOINC_PATIENT_CONSENT}]},
            {"coding": [{"system": CONSENT_CATEGORY_SYSTEM, "code": "sip"}]},
            {"coding": [{"system": CONSENT_CATEGORY_SYSTEM, "code": "sip-plan"}]},
        ],
        "patient": {"identifier": {"system": PERSONNUMMER_SYSTEM, "value": personnummer}},
        "performer": [{"identifier": {"system": PERSONNUMMER_SYSTEM, "value": personnummer}}],
        "organization": [
            {"identifier": {"system": HSA_ID_SYSTEM, "value": REGION}},
            {"identifier": {"system": HSA_ID_SYSTEM, "value": MUNICIPALITY}},
        ],
        "provision": {"period": {"start": "2026-01-01"}},
    }


def plan_body(person: DemoPerson) -> dict:
    return {
        "resourceType": "CarePlan",
        "status": "draft",
        "intent": "plan",
        "title": f"SIP för {person.name}",
        "subject": {"identifier": {"system": PERSONNUMMER_SYSTEM, "value": person.personnummer}},
        "author": {
            "identifier": {"system": HSA_ID_SYSTEM, "value": REGION},
            "extension": [{"url": EXT_ORGANIZATION_KIND, "valueCode": "region"}],
        },
    }


def hsa(value: str) -> dict:
    return {"valueIdentifier": {"system": HSA_ID_SYSTEM, "value": value}}


def text(value: str) -> dict:
    return {"valueString": value}


# What the coordinator records for each demo plan, in order: (operation, parameters).
PLAN_CONTENT: list[tuple[str, list[tuple[str, dict]]]] = [
    (
        "invite-organization",
        [
            ("organization", hsa(MUNICIPALITY)),
            ("kind", text("municipality")),
            ("name", text(MUNICIPALITY_NAME)),
        ],
    ),
    (
        "record-need",
        [
            ("text", text("Jag vill kunna bo kvar hemma och må bättre")),
            ("wishes", text("Samma personal så långt det går")),
        ],
    ),
    (
        "set-goal",
        [
            ("text", text("Klara vardagen hemma med stöd")),
            ("targetDate", {"valueDate": "2027-06-30"}),
            ("need", text("need-1")),
        ],
    ),
    (
        "assign-intervention",
        [
            ("text", text("Hemtjänst två gånger per dag")),
            ("kind", text("support")),
            ("need", text("need-1")),
            ("performerOrganization", hsa(MUNICIPALITY)),
            ("responsiblePrincipal", text("municipality")),
            ("responsibleOrganization", hsa(MUNICIPALITY)),
        ],
    ),
    (
        "assign-intervention",
        [
            ("text", text("Samtalsbehandling varannan vecka")),
            ("kind", text("treatment")),
            ("need", text("need-1")),
            ("performerOrganization", hsa(REGION)),
            ("responsiblePrincipal", text("region")),
            ("responsibleOrganization", hsa(REGION)),
        ],
    ),
    ("assign-overall-responsibility", [("organization", hsa(REGION))]),
    ("set-follow-up", [("date", {"valueDate": "2027-03-01"})]),
]


def coordinator_headers(issuer: DevIssuer, organization: str) -> dict[str, str]:
    token = issuer.mint(
        subject="demo-coordinator",
        role="coordinator",
        organization=organization,
        unit=organization,  # the unit each version was made from, in Provenance and the timeline
        scopes=default_scopes("coordinator"),
        lifetime_seconds=600,
    )
    return {"Authorization": f"Bearer {token}"}


def load_demo(sip_url: str, consent_url: str, issuer: DevIssuer) -> list[str]:
    """Loads the demo once, as a coordinator at the region (the municipality accepts its
    invitation to the active plan; the draft's waits in its worklist); returns one line per
    person."""
    headers = coordinator_headers(issuer, REGION)
    municipality = coordinator_headers(issuer, MUNICIPALITY)
    lines = []
    with (
        httpx.Client(timeout=10, headers=headers) as sip,
        httpx.Client(timeout=10, headers=headers) as consent,
    ):
        for person in PEOPLE:
            existing = sip.post(
                f"{sip_url}/fhir/CarePlan/_search",
                data={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{person.personnummer}"},
            )
            existing.raise_for_status()
            if existing.json()["total"]:
                lines.append(f"{person.name}: already loaded")
                continue
            plan = sip.post(f"{sip_url}/fhir/CarePlan", json=plan_body(person), headers=FHIR)
            plan.raise_for_status()
            plan_id = plan.json()["id"]
            for operation, values in PLAN_CONTENT:
                sip.post(
                    f"{sip_url}/fhir/CarePlan/{plan_id}/${operation}",
                    json={
                        "resourceType": "Parameters",
                        "parameter": [{"name": name, **value} for name, value in values],
                    },
                    headers=FHIR,
                ).raise_for_status()
            if person.state in ("active", "consent-withdrawn"):
                given = consent.post(
                    f"{consent_url}/fhir/Consent",
                    json=consent_body(person.personnummer),
                    headers=FHIR,
                )
                given.raise_for_status()
                if person.state == "active":
                    sip.post(
                        f"{sip_url}/fhir/CarePlan/{plan_id}/$accept-invitation",
                        json={"resourceType": "Parameters", "parameter": []},
                        headers={**FHIR, **municipality},
                    ).raise_for_status()
                    sip.post(f"{sip_url}/fhir/CarePlan/{plan_id}/$activate").raise_for_status()
                else:
                    consent.post(
                        f"{consent_url}/fhir/Consent/{given.json()['id']}/$withdraw",
                        json={
                            "resourceType": "Parameters",
                            "parameter": [{"name": "reason", "valueString": "Vill inte längre"}],
                        },
                        headers=FHIR,
                    ).raise_for_status()
            lines.append(f"{person.name}: CarePlan/{plan_id} ({person.state})")
    return lines
