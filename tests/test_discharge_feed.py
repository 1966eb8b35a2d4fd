"""Stays in the SIP service's event feed, over real HTTP on SQLite and PostgreSQL: an auditor
sees the stay as the hospital's record (its own entries whole, the units' withheld), a unit's
auditor its own entries only; a record system of an organisation the stay concerns gets what
the stay's disclosure rule shows it (services/sip/discharge/disclosure.py): the frame, the
steps on a secrecy judgement, the steps on consent while the consent holds (withheld, never
dropped, once withdrawn), each page logged; an outsider's gets nothing of it."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from services.sip.discharge.application import Stays
from tests.conftest import running_system
from tests.discharge_data import actor, local
from tests.discharge_http import PRIMARY
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    consent,
    new_personnummer,
    whole_feed,
    withdrawal,
)


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        yield system


def test_a_stay_in_the_feed_is_the_hospitals_record(system):
    stays = Stays(system.sip_app.state.plans, consent_gate=None)  # judgements: no consent asked
    personnummer, ward = new_personnummer(), f"{REGION}-WARD-{uuid4().hex[:6]}"
    hospital, unit = actor(REGION, ward), actor(PRIMARY, f"{PRIMARY}-VC")
    at = local("2026-03-02")
    person = {"system": "http://electronichealth.se/identifier/personnummer", "value": personnummer}
    stay = stays.admit(subject=person, ward=ward, admitted_at=at, by=hospital)
    stays.judge_care_needed(stay.id, principals=["region", "municipality"], at=at, by=hospital)
    stays.send_admission_notice(
        stay.id, estimated_discharge=at + timedelta(days=3), at=at, by=hospital,
        recipients=[{"organization": PRIMARY, "unit": f"{PRIMARY}-VC", "kind": "primary-care"},
                    {"organization": MUNICIPALITY, "unit": "K-SOC", "kind": "social-services"}],
        judgement="LSU 2017:612: needed for the planning",
    )  # fmt: skip
    stays.name_care_contact(stay.id, name="Svensson", already_existed=False,
                            at=at + timedelta(hours=2), by=unit, judgement="LSU")  # fmt: skip
    stay_id = str(stay.id)

    def of_stay(events):
        return {e["type"].rpartition(".")[2]: e for e in events if e["aggregate_id"] == stay_id}

    seen = of_stay(whole_feed(system.as_caller("auditor").sip)[0])
    assert seen["Admitted"]["payload"]["subject"]["value"] == personnummer
    assert seen["AdmissionNoticeSent"]["payload"] is not None
    # The unit's entry in the hospital's record: listed, its content withheld.
    assert seen["CareContactNamed"]["payload"] is None and seen["CareContactNamed"]["withheld"]

    unit_auditor = of_stay(whole_feed(system.as_caller("auditor", organization=PRIMARY).sip)[0])
    assert set(unit_auditor) == {"CareContactNamed"}
    assert unit_auditor["CareContactNamed"]["payload"]["name"] == "Svensson"

    # Every step here rests on a judgement or names no basis: the organisations concerned see
    # all of it; the outsider nothing, not even that there is a stay.
    for organization in (REGION, MUNICIPALITY, PRIMARY):
        events, _ = whole_feed(system.as_caller("integration", organization=organization).sip)
        assert set(of_stay(events)) == set(seen)
        assert all(e["payload"] is not None for e in of_stay(events).values())
    events, raw = whole_feed(system.as_caller("integration", organization=OTHER_REGION).sip)
    assert of_stay(events) == {} and personnummer not in raw


def test_a_withdrawn_consent_withholds_the_steps_on_it_from_the_feed_at_the_next_read(system):
    personnummer = new_personnummer()
    given = system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    assert given.status_code == 201, given.text
    stays = Stays(system.sip_app.state.plans, system.sip_app.state.consent_gate_uncached)
    ward = f"{REGION}-WARD-{uuid4().hex[:6]}"
    hospital = actor(REGION, ward)
    at = local("2026-03-02")
    person = {"system": "http://electronichealth.se/identifier/personnummer", "value": personnummer}
    stay = stays.admit(subject=person, ward=ward, admitted_at=at, by=hospital)
    stays.judge_care_needed(stay.id, principals=["municipality"], at=at, by=hospital)
    stays.send_admission_notice(
        stay.id, estimated_discharge=at + timedelta(days=3), at=at, by=hospital,
        recipients=[{"organization": MUNICIPALITY, "unit": "K-SOC", "kind": "social-services"}],
        judgement="LSU 2017:612: needed for the planning",
    )  # fmt: skip
    stays.notify_ready(stay.id, at=at + timedelta(days=1), by=hospital)  # on the consent
    stay_id = str(stay.id)
    municipality = system.as_caller("integration", organization=MUNICIPALITY).sip

    def of_stay():
        events, _ = whole_feed(municipality)
        return {e["type"].rpartition(".")[2]: e for e in events if e["aggregate_id"] == stay_id}

    before = of_stay()
    assert before["ReadyNotified"]["payload"]["legal_basis"]["basis"] == "consent"
    withdrawn = system.consent.post(
        f"/fhir/Consent/{given.json()['id']}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert withdrawn.status_code == 200, withdrawn.text
    system.settle()  # the follower has read the withdrawal: the cache forgets the consent
    after = of_stay()
    assert after["ReadyNotified"]["payload"] is None and after["ReadyNotified"]["withheld"]
    # The frame and the notice on a judgement are still the municipality's to see.
    assert after["Admitted"]["payload"]["subject"]["value"] == personnummer
    assert after["AdmissionNoticeSent"]["payload"] is not None
    # Each page that showed the stay was logged as a read of the person's record.
    log = system.as_caller("auditor", organization=REGION).sip.get(
        "/fhir/AuditEvent", params={"patient": personnummer}
    )
    assert log.status_code == 200 and "event-feed" in log.text
