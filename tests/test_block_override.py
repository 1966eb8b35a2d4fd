"""Overriding a block (*spärr*), issue 12, over real HTTP on both backends: only a
professional of the organisation that needs the information, on the person's consent given
then or in an emergency, for at most the configured time; each override is its own record,
in the person's log extract and found by auditors."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.fhir_time import fhir_instant, now
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    parameters,
    prepare_for_activation,
    sees_region_entries,
)
from tests.servers import wait_until

PROFESSIONAL_SCOPES = ("user/CarePlan.rus", "user/Consent.rus", "user/*.rs")


def blocked_plan(system) -> tuple[str, str, str]:
    """A plan the municipality takes part in, with the person's consent, and a block of the
    region's information: (personnummer, plan id, block id)."""
    personnummer = new_personnummer()
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    block = consent(personnummer, organizations=(REGION,), categories=())
    block["provision"]["type"] = "deny"
    block_id = system.consent.post("/fhir/Consent", json=block, headers=FHIR_JSON).json()["id"]
    reader = system.as_caller(organization=MUNICIPALITY).sip
    assert wait_until(lambda: not sees_region_entries(reader, plan_id))
    return personnummer, plan_id, block_id


def professional(system, organization: str = MUNICIPALITY, role: str = "professional"):
    return system.as_caller(role, organization=organization, scopes=PROFESSIONAL_SCOPES)


def override(caller, block_id: str, **values: Any):
    return caller.consent.post(
        f"/fhir/Consent/{block_id}/$override-block", json=parameters(**values), headers=FHIR_JSON
    )


def in_hours(hours: float) -> str:
    return fhir_instant(now() + timedelta(hours=hours))


@pytest.mark.parametrize(
    ("values", "status", "named"),
    [
        ({}, 422, "basis"),
        ({"basis": "because"}, 422, "basis"),
        ({"basis": "consent"}, 422, "form"),
        ({"basis": "consent", "form": "by-telepathy"}, 422, "form"),
        ({"basis": "emergency", "until": "LATER"}, 422, "until"),
    ],
    ids=["no-basis", "unknown-basis", "consent-without-form", "unknown-form", "past-maximum"],
)
def test_an_override_without_consent_or_emergency_or_too_long_is_refused(
    system, values, status, named
):
    _, plan_id, block_id = blocked_plan(system)
    if values.get("until") == "LATER":
        values = {**values, "until": in_hours(24.5)}
    refused = override(professional(system), block_id, reason="Behöver läsa planen", **values)
    assert refused.status_code == status, refused.text
    issue = refused.json()["issue"][0]
    assert named in issue["diagnostics"], issue
    assert system.consent.get(f"/fhir/Consent/{block_id}").headers["ETag"] == 'W/"1"'
    reader = system.as_caller(organization=MUNICIPALITY).sip
    assert not sees_region_entries(reader, plan_id)


@pytest.mark.parametrize("role", ["coordinator", "integration", "patient", "auditor"])
def test_an_override_by_anyone_but_a_professional_is_refused(system, role):
    personnummer, _, block_id = blocked_plan(system)
    caller = (
        system.as_caller(role, organization=None, patient=personnummer)
        if role == "patient"
        else professional(system, role=role)
    )
    refused = override(caller, block_id, reason="akut", basis="emergency", until=in_hours(1))
    assert refused.status_code == 403, refused.text
    assert system.consent.get(f"/fhir/Consent/{block_id}").headers["ETag"] == 'W/"1"'


def test_an_override_without_until_lasts_the_longest_allowed(system):
    _, _, block_id = blocked_plan(system)
    before = now()
    granted = override(professional(system), block_id, reason="Akut", basis="emergency")
    assert granted.status_code == 200, granted.text
    recorded = system.consent.get(f"/fhir/Consent/{block_id}").json()
    until = next(
        part["valueDateTime"]
        for extension in recorded["extension"]
        for part in extension.get("extension", [])
        if part["url"] == "until"
    )
    assert fhir_instant(before + timedelta(hours=24)) <= until <= in_hours(24)


@pytest.mark.latency
def test_a_valid_override_is_time_limited_and_in_the_log_extract_and_the_audit(system):
    personnummer, plan_id, block_id = blocked_plan(system)
    reader = system.as_caller(organization=MUNICIPALITY).sip
    until = now() + timedelta(seconds=3)
    granted = override(
        professional(system),
        block_id,
        reason="Patienten samtycker muntligt vid besöket",
        basis="consent",
        form="oral",
        until=fhir_instant(until),
    )
    assert granted.status_code == 200, granted.text
    assert sees_region_entries(reader, plan_id)
    assert wait_until(lambda: not sees_region_entries(reader, plan_id))
    ended_after = (now() - until).total_seconds()
    print(f"\n[{system.backend.name}] override end to denial: {ended_after:.3f} s")
    assert ended_after < 1.0

    # In the person's log extract (the SIP service merges the consent service's part).
    me = system.as_caller("patient", organization=None, patient=personnummer)
    extract = me.sip.get(f"/fhir/Patient/{personnummer}/$access-log")
    assert extract.status_code == 200, extract.text
    overrides = [e for e in extract.json()["entries"] if "block" in e["what"]]
    assert [(e["organization"], e["service"]) for e in overrides] == [
        (MUNICIPALITY, "SIP consent service")
    ], extract.json()["entries"]
    assert "Patienten samtycker muntligt" in overrides[0]["what"]

    # Found by auditors, of the organisation that overrode and of the block's custodian.
    for organization in (MUNICIPALITY, REGION):
        auditor = system.as_caller("auditor", organization=organization).consent
        found = auditor.get(
            "/fhir/AuditEvent",
            params={
                "subtype": "block-override",
                "patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}",
            },
        )
        assert found.status_code == 200, found.text
        events = [e["resource"] for e in found.json()["entry"]]
        assert len(events) == 1, (organization, events)
        assert events[0]["subtype"][0]["code"] == "block-override"
        assert events[0]["agent"][1]["who"]["identifier"]["value"] == MUNICIPALITY
        assert f"Consent/{block_id}" in str(events[0]["entity"])


def test_auditors_find_every_override_by_subtype(system):
    _, _, first = blocked_plan(system)
    _, _, second = blocked_plan(system)
    since = fhir_instant(now() - timedelta(seconds=1))
    for block_id in (first, second):
        assert override(professional(system), block_id, reason="Akut", basis="emergency").is_success
    time.sleep(0.01)
    auditor = system.as_caller("auditor", organization=MUNICIPALITY).consent
    query = {"subtype": "block-override", "date": f"ge{since}"}
    found = auditor.get("/fhir/AuditEvent", params=query)
    blocks = {
        entity["what"]["reference"].split("/")[1]
        for event in found.json()["entry"]
        for entity in event["resource"].get("entity", [])
        if entity["what"].get("reference", "").startswith("Consent/")
    }
    assert {first, second} <= blocks
    everything = auditor.get("/fhir/AuditEvent", params={"date": f"ge{since}"}).json()["total"]
    assert found.json()["total"] < everything  # the subtype narrows the search


def test_the_longest_override_and_the_trusted_peers_are_configured(monkeypatch):
    from services.common.settings import ServiceSettings

    for variable in ("CONSENT_BLOCK_OVERRIDE_MAX_HOURS", "CONSENT_TRUSTED_PEERS"):
        monkeypatch.delenv(variable, raising=False)
    defaults = ServiceSettings.from_env("CONSENT_DATABASE_URL")
    assert (defaults.block_override_max_hours, defaults.trusted_peer_subjects) == (
        24.0,
        {"sip-service"},  # the embedded default's own SIP service
    )
    production = replace(defaults, database_url="postgresql://db/consent")
    assert production.trusted_peer_subjects == frozenset()  # nobody unless configured
    monkeypatch.setenv("CONSENT_BLOCK_OVERRIDE_MAX_HOURS", "4")
    monkeypatch.setenv("CONSENT_TRUSTED_PEERS", "sip-client-a sip-client-b")
    configured = ServiceSettings.from_env("CONSENT_DATABASE_URL")
    assert configured.block_override_max_hours == 4.0
    assert configured.trusted_peer_subjects == {"sip-client-a", "sip-client-b"}
