"""Stays in the SIP service's event feed, over real HTTP on SQLite and PostgreSQL: an auditor
sees the stay as the hospital's record (its own entries whole, the units' withheld), a unit's
auditor its own entries only, and no record system sees any of it, since no stay is disclosed
through the feed's plan rule (a stay's id is no CarePlan: not found, not disclosed)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from services.sip.discharge.application import Stays
from tests.conftest import running_system
from tests.discharge_data import local
from tests.fhir_data import MUNICIPALITY, REGION, new_personnummer, whole_feed

PRIMARY = "SE2321000032-P0001"  # a primary-care provider of its own


def actor(organization, unit):
    return {"subject": "s", "role": "professional", "organization": organization, "unit": unit}


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

    for organization in (REGION, MUNICIPALITY, PRIMARY):
        events, raw = whole_feed(system.as_caller("integration", organization=organization).sip)
        assert of_stay(events) == {} and personnummer not in raw
