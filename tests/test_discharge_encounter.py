"""The stay as FHIR Encounter over real HTTP, on SQLite and PostgreSQL, tried as an attacker
and a careless client would: no token (401), a token without the Encounter scope (403), an
outsider and another person (404, the same answer as an unknown id, and nothing in a search),
a plan's id asked as a stay and a stay's as a plan (404); what the concerned units see of the
stay (the steps on a judgement always, those on consent while the consent holds), the person
seeing all of it, `_history`, vread and the search parameters, each read in the access log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.sip.discharge.fhir import (
    EXT_CARE_CONTACT,
    EXT_ESTIMATED_DISCHARGE,
    EXT_READY,
    EXT_STAY_STATUS,
)
from services.sip.discharge.stay import WITHIN_ORGANIZATION
from tests.conftest import running_system
from tests.discharge_http import (
    PRIMARY,
    SOCIAL,
    VARDCENTRAL,
    WARD,
    admit,
    consent_to_the_stay,
    noticed_through_the_application,
    staff,
    stays_of,
    step,
    told,
)
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    new_personnummer,
    withdrawal,
)


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        yield system


def urls(resource):
    return [e["url"] for e in resource.get("extension", [])]


def a_stay(system, *, consent_id_out: list | None = None):
    """A stay of the region's ward, told to primary care (on a judgement) and the
    municipality; the ready notice on the person's consent. (stay id, personnummer)."""
    personnummer = new_personnummer()
    consent_id = consent_to_the_stay(system, personnummer)
    if consent_id_out is not None:
        consent_id_out.append(consent_id)
    stay_id, _ = noticed_through_the_application(
        stays_of(system), personnummer, ready_after=timedelta(days=1)
    )
    return stay_id, personnummer


def test_the_hospital_reads_its_stay_with_every_step_and_its_versions(system):
    stay_id, personnummer = a_stay(system)
    hospital = system.as_caller("professional", REGION).sip
    read = hospital.get(f"/fhir/Encounter/{stay_id}")
    assert read.status_code == 200, read.text
    encounter = read.json()
    assert encounter["resourceType"] == "Encounter" and encounter["status"] == "in-progress"
    assert encounter["class"]["code"] == "IMP"
    assert encounter["subject"]["identifier"]["value"] == personnummer
    assert {EXT_STAY_STATUS, EXT_ESTIMATED_DISCHARGE, EXT_READY, EXT_CARE_CONTACT} <= set(
        urls(encounter)
    )
    assert "security" not in encounter["meta"]
    assert encounter["meta"]["versionId"] == "5"
    first = hospital.get(f"/fhir/Encounter/{stay_id}/_history/1").json()
    assert first["meta"]["versionId"] == "1" and EXT_READY not in urls(first)
    history = hospital.get(f"/fhir/Encounter/{stay_id}/_history").json()
    assert history["total"] == 5 and history["type"] == "history"


def test_an_outsider_and_another_person_are_told_it_does_not_exist(system):
    stay_id, personnummer = a_stay(system)
    unknown = system.sip.get(f"/fhir/Encounter/{uuid4()}")
    assert unknown.status_code == 404
    outsiders = [
        system.as_caller("professional", OTHER_REGION).sip,
        system.as_caller("integration", OTHER_REGION).sip,
        system.as_caller("patient", None, patient=new_personnummer()).sip,
    ]
    for outsider in outsiders:
        read = outsider.get(f"/fhir/Encounter/{stay_id}")
        assert read.status_code == 404 and personnummer not in read.text
        assert outsider.get(f"/fhir/Encounter/{stay_id}/_history").status_code == 404
        assert outsider.get(f"/fhir/Encounter/{stay_id}/_history/1").status_code == 404
        found = outsider.post("/fhir/Encounter/_search", data={"_id": stay_id})
        assert found.status_code == 200 and found.json()["total"] == 0
        history = outsider.get("/fhir/Encounter/_history").json()
        assert stay_id not in str(history)


def test_no_token_is_401_and_a_token_without_the_encounter_scope_is_403(system):
    stay_id, _ = a_stay(system)
    assert system.without_token.sip.get(f"/fhir/Encounter/{stay_id}").status_code == 401
    plans_only = system.as_caller("integration", REGION, scopes=("system/CarePlan.rs",)).sip
    assert plans_only.get(f"/fhir/Encounter/{stay_id}").status_code == 403
    assert plans_only.get("/fhir/Encounter").status_code == 403


def test_a_stay_is_no_care_plan_and_a_plan_no_encounter(system):
    stay_id, personnummer = a_stay(system)
    assert system.sip.get(f"/fhir/CarePlan/{stay_id}").status_code == 404
    plan = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    assert system.sip.get(f"/fhir/Encounter/{plan.json()['id']}").status_code == 404
    assert system.sip.get("/fhir/Encounter/not-a-uuid").status_code in (400, 404)


def test_a_withdrawn_consent_hides_the_steps_on_it_from_the_units_not_from_the_person(system):
    given: list[str] = []
    stay_id, personnummer = a_stay(system, consent_id_out=given)
    municipality = system.as_caller("integration", MUNICIPALITY).sip
    before = municipality.get(f"/fhir/Encounter/{stay_id}").json()
    assert EXT_READY in urls(before) and EXT_CARE_CONTACT in urls(before)
    withdrawn = system.consent.post(
        f"/fhir/Consent/{given[0]}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert withdrawn.status_code == 200, withdrawn.text
    system.settle()
    after = municipality.get(f"/fhir/Encounter/{stay_id}").json()
    # The ready notice rested on the consent: gone, marked. The contact (a judgement) stays.
    assert EXT_READY not in urls(after) and EXT_CARE_CONTACT in urls(after)
    assert after["meta"]["security"][0]["code"] == "REDACTED"
    assert after["extension"][-1]["extension"][1]["valueCode"] == "ready-notice"
    # Past versions are redacted with today's disclosure too.
    history = municipality.get(f"/fhir/Encounter/{stay_id}/_history").json()
    assert all(EXT_READY not in urls(e["resource"]) for e in history["entry"])
    # The person sees their whole stay.
    person = system.as_caller("patient", None, patient=personnummer).sip
    whole = person.get(f"/fhir/Encounter/{stay_id}").json()
    assert EXT_READY in urls(whole) and "security" not in whole["meta"]


def test_the_search_parameters_find_the_stay_and_each_read_is_logged(system):
    stay_id, personnummer = a_stay(system)
    hospital = system.as_caller("professional", REGION).sip

    def ids(**params):
        found = hospital.post("/fhir/Encounter/_search", data=params)
        assert found.status_code == 200, found.text
        return {e["resource"]["id"] for e in found.json().get("entry", [])}

    assert ids(patient=f"Patient/{personnummer}") == {stay_id}
    assert ids(**{"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}) == {stay_id}
    assert stay_id in ids(status="in-progress") and stay_id not in ids(status="finished")
    assert stay_id in ids(_lastUpdated="ge2020-01-01") and stay_id not in ids(
        _lastUpdated="ge2099-01-01"
    )
    bad = hospital.get("/fhir/Encounter", params={"status": "ready-ish"})
    assert bad.status_code == 400 and "status" in bad.text
    assert hospital.get("/fhir/Encounter", params={"ward": "x"}).status_code == 400
    log = system.as_caller("auditor", REGION).sip.get(
        "/fhir/AuditEvent", params={"patient": personnummer}
    )
    assert log.status_code == 200 and f"Encounter/{stay_id}" in log.text


def test_a_notice_only_within_the_hospitals_organisation_needs_no_consent(system):
    """The region's own primary care is told, nothing leaves the region: no consent is asked
    and the basis recorded says so. A notice that also goes to another organisation still
    needs the consent (or a judgement) for that one, and without it nothing is written."""
    ward = staff(system, REGION, WARD)
    own_primary_care = {"organization": REGION, "unit": VARDCENTRAL, "kind": "primary-care"}
    estimate = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    within = admit(ward, new_personnummer()).json()["id"]
    assert step(ward, within, "judge-care-needed", principal=["region"]).status_code == 200
    sent = step(
        ward, within, "send-admission-notice", recipient=[own_primary_care],
        estimatedDischarge=estimate,
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    stay = stays_of(system).stay(UUID(within))
    assert stay.admission_notice.legal_basis == {"basis": WITHIN_ORGANIZATION}

    outside = admit(ward, new_personnummer()).json()["id"]
    both = ["region", "municipality"]
    assert step(ward, outside, "judge-care-needed", principal=both).status_code == 200
    refused = step(
        ward, outside, "send-admission-notice", estimatedDischarge=estimate,
        recipient=[own_primary_care, told((PRIMARY, VARDCENTRAL), (MUNICIPALITY, SOCIAL))[1]],
    )  # fmt: skip
    assert refused.status_code == 409, refused.text
    issue = refused.json()["issue"][0]
    assert issue["expression"] == ["Parameters.parameter.where(name='judgement')"]
    assert f"disclosure from {REGION} to {MUNICIPALITY} is not permitted" in refused.text
    assert f"to {REGION} " not in refused.text  # its own organisation is not asked about
    assert stays_of(system).stay(UUID(outside)).admission_notice is None
