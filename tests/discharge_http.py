"""Stays for the discharge tests over HTTP: staff of the hospital's ward, primary care and the
municipality, the Encounter operations, the person's consent, a stay noticed and one walked
through every operation; and a stay noticed through the application, its steps dated then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.sip.discharge.application import Stays
from services.sip.discharge.fhir import EXT_STAY_STATUS
from tests.discharge_data import actor, local
from tests.fhir_data import FHIR_JSON, MUNICIPALITY, REGION, consent, parameters

PRIMARY = "SE2321000032-P0001"
WARD, VARDCENTRAL, SOCIAL = "SE2321000032-WARD7", "SE2321000032-PVC1", "SE2120000357-KSOC1"
STAFF_SCOPES = ("user/Encounter.rus", "user/CarePlan.rus", "user/*.rs")
ADMITTED = local("2026-03-02")
JUDGEMENT = "LSU 2017:612: needed for the planning"


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


def consent_to_the_stay(
    system: Any, personnummer: str, organizations: tuple[str, ...] = (REGION, MUNICIPALITY, PRIMARY)
) -> str:
    """The person's consent to the hospital, primary care and the municipality, given through
    `system`'s (or a caller's) consent service: its id."""
    given = system.consent.post(
        "/fhir/Consent",
        json=consent(personnummer, organizations=organizations),
        headers=FHIR_JSON,
    )
    assert given.status_code == 201, given.text
    return given.json()["id"]


def told(primary_care: tuple[str, str], municipality: tuple[str, str]) -> list[dict[str, str]]:
    """The notice's recipients: primary care's and the municipality's (organisation, unit)."""
    return [
        {"organization": primary_care[0], "unit": primary_care[1], "kind": "primary-care"},
        {"organization": municipality[0], "unit": municipality[1], "kind": "social-services"},
    ]


def noticed_over_http(ward: Any, personnummer: str, recipients: list[dict[str, str]]) -> str:
    """Admitted by `ward` (a caller at the ward), care judged needed by the region and the
    municipality, the notice sent to `recipients`, discharge estimated in three days: its id."""
    admitted = admit(ward, personnummer)
    assert admitted.status_code == 200, admitted.text
    stay_id = admitted.json()["id"]
    estimate = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    for operation, values in (
        ("judge-care-needed", {"principal": ["region", "municipality"]}),
        ("send-admission-notice", {"recipient": recipients, "estimatedDischarge": estimate}),
    ):
        answer = step(ward, stay_id, operation, **values)
        assert answer.status_code == 200, (operation, answer.text)
    return stay_id


def a_stays_whole_life(system: Any, personnummer: str) -> str:
    """Every operation of the stay once, each answered 200: its id."""
    consent_to_the_stay(system, personnummer)
    ward = staff(system, REGION, WARD)
    vc = staff(system, PRIMARY, VARDCENTRAL)
    municipality = staff(system, MUNICIPALITY, SOCIAL)
    recipients = told((PRIMARY, VARDCENTRAL), (MUNICIPALITY, SOCIAL))
    stay_id = noticed_over_http(ward, personnummer, recipients)
    steps = [
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


def log_extract(system: Any, personnummer: str, organization: str = REGION) -> list[dict[str, Any]]:
    """The person's log extract (AuditEvent), as an auditor of the organisation reads it."""
    log = system.as_caller("auditor", organization).sip.get(
        "/fhir/AuditEvent", params={"patient": personnummer}
    )
    assert log.status_code == 200, log.text
    return [entry["resource"] for entry in log.json().get("entry", [])]


def stays_of(system: Any) -> Stays:
    """The SIP service's stays as the application: steps dated as the test chooses."""
    state = system.sip_app.state
    return Stays(state.plans, state.consent_gate_uncached, state.stay_index)


def noticed_through_the_application(
    stays: Stays,
    personnummer: str,
    *,
    organization: str = REGION,
    ward: str | None = None,
    primary_care: tuple[str, str] = (PRIMARY, f"{PRIMARY}-VC"),
    municipality: tuple[str, str] = (MUNICIPALITY, "K-SOC"),
    at: datetime = ADMITTED,
    notice_after: timedelta = timedelta(0),
    estimated_after: timedelta = timedelta(days=3),
    judgement: str | None = JUDGEMENT,
    ready_after: timedelta | None = None,
    care_contact: str = "Svensson",
) -> tuple[str, str]:
    """Admitted at `at` at `organization`'s `ward` (a new one if None), care judged needed by
    the region and the municipality, the notice sent `notice_after` later to `primary_care`
    and `municipality` (organisation, unit) on `judgement` (None: on the person's consent).
    With `ready_after`: the care contact named by primary care two hours after admission (on a
    judgement), the person ready `ready_after` after admission (on the consent).
    (stay id, ward)."""
    # A new ward: an HSA-id of the organisation's own (a message's sender or recipient).
    ward = ward or f"{organization.partition('-')[0]}-W{uuid4().hex[:6].upper()}"
    hospital = actor(organization, ward)
    person = {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
    stay = stays.admit(subject=person, ward=ward, admitted_at=at, by=hospital)
    stays.judge_care_needed(stay.id, principals=["region", "municipality"], at=at, by=hospital)
    stays.send_admission_notice(
        stay.id, recipients=told(primary_care, municipality), judgement=judgement,
        estimated_discharge=at + estimated_after, at=at + notice_after, by=hospital,
    )  # fmt: skip
    if ready_after is not None:
        stays.name_care_contact(stay.id, name=care_contact, already_existed=False,
                                at=at + timedelta(hours=2), by=actor(*primary_care),
                                judgement="LSU")  # fmt: skip
        stays.notify_ready(stay.id, at=at + ready_after, by=hospital)
    return str(stay.id), ward
