"""A whole stay over HTTP, on SQLite and PostgreSQL, through the Encounter operations: the ward
admits, judges care needed and sends the notice; primary care and the municipality confirm
receipt; primary care names the fixed care contact; the ward notifies ready; primary care calls
the SIP (a draft CarePlan that the hospital and the municipality are invited to, linked from
the stay); the ward transfers the information and discharges. On the way, what an attacker or
a careless client tries is refused before anything is written: an outsider (404), the person
(403), a unit taking the ward's step (409 naming the rule), a stale If-Match (412), malformed
input (400 naming the element)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.identifiers import HSA_ID_SYSTEM
from services.sip.discharge.fhir import EXT_CARE_CONTACT, EXT_SIP_PLAN
from tests.conftest import running_system
from tests.discharge_http import (
    PRIMARY,
    SOCIAL,
    STAFF_SCOPES,
    VARDCENTRAL,
    WARD,
    admit,
    consent_to_the_stay,
    extension,
    staff,
    status,
    step,
)
from tests.fhir_data import (
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    new_personnummer,
)


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        yield system


def test_a_whole_stay_from_admission_to_discharge(system):
    personnummer = new_personnummer()
    consent_to_the_stay(system, personnummer)
    ward = staff(system, REGION, WARD)
    vc = staff(system, PRIMARY, VARDCENTRAL)
    municipality = staff(system, MUNICIPALITY, SOCIAL)
    outsider = staff(system, OTHER_REGION, "SE2321000016-U1")
    person = system.as_caller("patient", None, patient=personnummer).sip

    admitted = admit(ward, personnummer)
    assert admitted.status_code == 200, admitted.text
    stay_id = admitted.json()["id"]
    assert status(admitted.json()) == "admitted" and admitted.json()["status"] == "in-progress"

    judged = step(ward, stay_id, "judge-care-needed", principal=["region", "municipality"])
    assert judged.status_code == 200, judged.text
    estimate = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    recipients = [
        {"organization": PRIMARY, "unit": VARDCENTRAL, "kind": "primary-care"},
        {"organization": MUNICIPALITY, "unit": SOCIAL, "kind": "social-services"},
    ]
    # Before the notice the stay concerns the hospital alone.
    assert municipality.get(f"/fhir/Encounter/{stay_id}").status_code == 404
    noticed = step(ward, stay_id, "send-admission-notice", recipient=recipients,
                   estimatedDischarge=estimate)  # fmt: skip
    assert noticed.status_code == 200, noticed.text

    for unit in (vc, municipality):
        received = step(unit, stay_id, "confirm-receipt")
        assert received.status_code == 200, received.text
    named = step(vc, stay_id, "name-care-contact", name="Sköterska Svensson")
    assert named.status_code == 200, named.text
    assert extension(named.json(), EXT_CARE_CONTACT) is not None

    ready = step(ward, stay_id, "notify-ready")
    assert ready.status_code == 200, ready.text
    assert status(ready.json()) == "ready"

    called = step(vc, stay_id, "call-sip", title="SIP inför utskrivning")
    assert called.status_code == 200, called.text
    link = extension(called.json(), EXT_SIP_PLAN)
    plan_ref = link["extension"][0]["valueReference"]["reference"]
    assert plan_ref.startswith("CarePlan/")
    # The draft plan appears for both units (and the hospital), for the person.
    for reader in (vc, municipality, ward):
        plan = reader.get(f"/fhir/{plan_ref}")
        assert plan.status_code == 200, plan.text
        assert plan.json()["status"] == "draft"
        assert plan.json()["subject"]["identifier"]["value"] == personnummer
    assert outsider.get(f"/fhir/{plan_ref}").status_code == 404

    transferred = step(ward, stay_id, "transfer-information")
    assert transferred.status_code == 200, transferred.text
    discharged = step(ward, stay_id, "discharge")
    assert discharged.status_code == 200, discharged.text
    assert discharged.json()["status"] == "finished" and status(discharged.json()) == "discharged"
    assert "end" in discharged.json()["period"]

    # Every unit concerned and the person see the stay to its end; the outsider nothing.
    for reader in (vc, municipality, person):
        seen = reader.get(f"/fhir/Encounter/{stay_id}")
        assert seen.status_code == 200 and seen.json()["status"] == "finished"
    assert outsider.get(f"/fhir/Encounter/{stay_id}").status_code == 404
    history = ward.get(f"/fhir/Encounter/{stay_id}/_history").json()
    assert history["total"] == 10
    # The person's log extract lists reads of their stay.
    log = system.as_caller("auditor", REGION).sip.get(
        "/fhir/AuditEvent", params={"patient": personnummer}
    )
    assert f"Encounter/{stay_id}" in log.text


def test_what_an_attacker_or_a_careless_client_tries_is_refused_and_writes_nothing(system):
    personnummer = new_personnummer()
    ward = staff(system, REGION, WARD)
    municipality = staff(system, MUNICIPALITY, SOCIAL)
    stay_id = admit(ward, personnummer).json()["id"]
    step(ward, stay_id, "judge-care-needed", principal=["municipality"])
    estimate = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    recipient = {"organization": MUNICIPALITY, "unit": SOCIAL, "kind": "social-services"}

    def version():
        return ward.get(f"/fhir/Encounter/{stay_id}").json()["meta"]["versionId"]

    before = version()
    outsider = staff(system, OTHER_REGION, "SE2321000016-U1")
    assert step(outsider, stay_id, "notify-ready").status_code == 404
    person = system.as_caller("patient", None, patient=personnummer,
                              scopes=("patient/Encounter.rus",)).sip  # fmt: skip
    assert step(person, stay_id, "discharge").status_code == 403
    no_unit = system.as_caller("professional", REGION, scopes=STAFF_SCOPES).sip
    assert step(no_unit, stay_id, "discharge").status_code == 403
    # A careless client: a kind that does not exist, no estimate, a personnummer that is none.
    wrong_kind = step(ward, stay_id, "send-admission-notice", estimatedDischarge=estimate,
                      recipient=[{**recipient, "kind": "hospice"}], judgement="LSU")  # fmt: skip
    assert wrong_kind.status_code == 422 and "recipients[0].kind" in wrong_kind.text
    no_estimate = step(ward, stay_id, "send-admission-notice", recipient=[recipient],
                       judgement="LSU")  # fmt: skip
    assert no_estimate.status_code == 400 and "estimatedDischarge" in no_estimate.text
    bad_person = admit(ward, "not-a-personnummer")
    assert bad_person.status_code == 422 and "patient" in bad_person.text
    future = admit(ward, new_personnummer(), admittedAt="2099-01-01T10:00:00+01:00")
    assert future.status_code == 400 and "admittedAt" in future.text
    stale = step(ward, stay_id, "send-admission-notice", headers={"If-Match": 'W/"1"'},
                 recipient=[recipient], estimatedDischarge=estimate, judgement="LSU")  # fmt: skip
    assert stale.status_code == 412
    assert version() == before  # nothing written by any of them
    sent = step(ward, stay_id, "send-admission-notice", headers={"If-Match": f'W/"{before}"'},
                recipient=[recipient], estimatedDischarge=estimate, judgement="LSU")  # fmt: skip
    assert sent.status_code == 200, sent.text
    # The ward's step taken by the municipality: a rule, named.
    theirs = step(municipality, stay_id, "discharge")
    assert theirs.status_code == 409 and "by-the-hospital" in theirs.text
    assert HSA_ID_SYSTEM in sent.text
