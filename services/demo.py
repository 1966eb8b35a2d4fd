"""A small, realistic demo data set, loaded through the services' own FHIR APIs.

The personnummer are Skatteverket-style test numbers (serial numbers 98x, which are never
issued to real people); the HSA-ids are made-up ids of the right form.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
    STAY_PERSON,
    WARD,
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


def coordinator_headers(
    issuer: DevIssuer, organization: str, role: str = "coordinator", unit: str | None = None
) -> dict[str, str]:
    token = issuer.mint(
        subject=f"demo-{role}",
        role=role,
        organization=organization,
        # The unit each version was made from, in Provenance and the timeline.
        unit=unit or organization,
        scopes=default_scopes(role),
        lifetime_seconds=600,
    )
    return {"Authorization": f"Bearer {token}"}


def operation(name: str, values: list[tuple[str, dict]]) -> dict:
    """A stay operation's Parameters: (name, value[x] or parts) in order."""
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": n, **value} for n, value in values],
    }


def recipient(unit: str, kind: str) -> dict:
    parts = [("organization", hsa(unit)), ("unit", hsa(unit)), ("kind", text(kind))]
    return {"part": [{"name": n, **value} for n, value in parts]}


def load_demo_stay(sip_url: str, consent_url: str, issuer: DevIssuer) -> str:
    """The demo's stay in progress, once: admitted at the region's ward, the admission notice
    sent to the region's unit (primary care) and the municipality's, both confirming receipt,
    the fixed care contact named and the person ready for discharge, on the person's consent,
    so the SIP call is due in 72 hours. One line for the person."""
    ward = coordinator_headers(issuer, REGION, "professional", WARD)
    region = coordinator_headers(issuer, REGION)
    municipality = coordinator_headers(issuer, MUNICIPALITY)
    person = STAY_PERSON
    with httpx.Client(timeout=10) as http:
        existing = http.post(
            f"{sip_url}/fhir/Encounter/_search",
            data={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{person.personnummer}"},
            headers=ward,
        )
        existing.raise_for_status()
        if existing.json()["total"]:
            return f"{person.name}: already loaded"
        http.post(
            f"{consent_url}/fhir/Consent",
            json=consent_body(person.personnummer),
            headers={**FHIR, **region},
        ).raise_for_status()
        patient = {"valueIdentifier": {"system": PERSONNUMMER_SYSTEM, "value": person.personnummer}}
        admitted = http.post(
            f"{sip_url}/fhir/Encounter/$admit",
            json=operation("admit", [("ward", hsa(WARD)), ("patient", patient)]),
            headers={**FHIR, **ward},
        )
        admitted.raise_for_status()
        stay_id = admitted.json()["id"]
        estimate = (datetime.now(UTC) + timedelta(days=4)).isoformat()
        steps = [
            (ward, "judge-care-needed", [("principal", text("region")),
                                         ("principal", text("municipality"))]),
            (ward, "send-admission-notice", [
                ("recipient", recipient(REGION, "primary-care")),
                ("recipient", recipient(MUNICIPALITY, "social-services")),
                ("estimatedDischarge", {"valueDateTime": estimate}),
            ]),
            (region, "confirm-receipt", []),
            (municipality, "confirm-receipt", []),
            (region, "name-care-contact", [("name", text("Lena Berg"))]),
            (ward, "notify-ready", []),
        ]  # fmt: skip
        for headers, name, values in steps:
            http.post(
                f"{sip_url}/fhir/Encounter/{stay_id}/${name}",
                json=operation(name, values),
                headers={**FHIR, **headers},
            ).raise_for_status()
    return f"{person.name}: Encounter/{stay_id} (utskrivningsklar, SIP ska kallas inom 3 dygn)"


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
    lines.append(load_demo_stay(sip_url, consent_url, issuer))
    return lines
