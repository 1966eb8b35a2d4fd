"""The SIP service obeys the consent service, over real HTTP between the two: no organisation's
entries reach another without a consent in force (each sees the plan's frame and its own
entries), a withdrawal acts within a second, a child's plan needs the guardians, a block
overrides a consent, and with the consent service down disclosures stop (503) while an
organisation keeps its own data. Entry by entry: tests/test_entry_custodians.py."""

import time
from datetime import timedelta

import httpx
import pytest

from contracts.canonical import EXT_CONSENT_GIVER_ROLE, EXT_CONSENT_WITHDRAWN
from contracts.identifiers import PERSONNUMMER_SYSTEM, with_check_digit
from services.common.fhir_time import fhir_instant, now
from tests.conftest import System
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
    withdrawal,
)
from tests.servers import serve, wait_until


def shared_plan(system, personnummer):
    """A plan of the region's that the municipality takes part in."""
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    return plan_id


def give(system, body):
    response = system.consent.post("/fhir/Consent", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.latency
def test_visible_with_consent_and_invisible_within_a_second_of_withdrawal(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    # Taking part, the municipality sees the frame, but none of the region's entries.
    frame = municipality.get(f"/fhir/CarePlan/{plan_id}").json()
    assert frame["meta"]["security"][0]["code"] == "REDACTED"
    assert not sees_region_entries(municipality, plan_id)

    consent_id = give(system, consent(personnummer))
    assert system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate").status_code == 200
    assert sees_region_entries(municipality, plan_id)
    assert municipality.get(f"/fhir/CareTeam/{plan_id}-team").status_code == 200  # cached now

    withdrawn_at = time.monotonic()
    response = system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert response.status_code == 200
    assert wait_until(lambda: not sees_region_entries(municipality, plan_id), seconds=1.0), (
        "still disclosed a second after the withdrawal"
    )
    assert time.monotonic() - withdrawn_at < 1.0
    assert wait_until(
        lambda: any(
            e["url"] == EXT_CONSENT_WITHDRAWN
            for e in system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["extension"]
        ),
        seconds=2.0,
    ), "the plan does not show the withdrawal"
    plan = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()
    assert plan["supportingInfo"][0]["display"] == "Consent withdrawn"


def guardian(personnummer, **flags):
    parts = [{"url": "role", "valueCode": "guardian"}] + [
        {"url": name, "valueBoolean": True} for name in flags
    ]
    return {
        "identifier": {"system": PERSONNUMMER_SYSTEM, "value": personnummer},
        "extension": [{"url": EXT_CONSENT_GIVER_ROLE, "extension": parts}],
    }


def test_a_childs_plan_needs_the_guardians_consent(system):
    child = with_check_digit("20150607983")
    plan_id = shared_plan(system, child)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    give(system, consent(child))  # the child's own, not found mature enough
    refused = system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert refused.status_code == 409
    assert "is not permitted" in refused.json()["issue"][0]["diagnostics"]
    assert not sees_region_entries(municipality, plan_id)

    one_guardian = consent(child)
    one_guardian["performer"] = [guardian(new_personnummer("19850101"))]
    give(system, one_guardian)
    assert system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate").status_code == 409

    both = consent(child)
    both["performer"] = [
        guardian(new_personnummer("19850101")),
        guardian(new_personnummer("19860101")),
    ]
    both_id = give(system, both)
    activated = system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert activated.status_code == 200, activated.text
    assert activated.json()["supportingInfo"][0]["identifier"]["value"] == f"urn:uuid:{both_id}"
    assert sees_region_entries(municipality, plan_id)


def test_a_block_overrides_a_consent_until_an_override_is_given(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    give(system, consent(personnummer))
    municipality = system.as_caller(organization=MUNICIPALITY)
    assert sees_region_entries(municipality.sip, plan_id)

    block = consent(personnummer, organizations=(REGION,), categories=())
    block["provision"]["type"] = "deny"
    block_id = give(system, block)  # the person blocks the region's information
    assert wait_until(lambda: not sees_region_entries(municipality.sip, plan_id), seconds=1.0)
    # A professional of the municipality, in an emergency, for a few hours (issue 12).
    professional = system.as_caller("professional", organization=MUNICIPALITY)  # default scopes
    override = professional.consent.post(
        f"/fhir/Consent/{block_id}/$override-block",
        json=parameters(
            reason="Akut läge, patienten medvetslös",
            basis="emergency",
            until=fhir_instant(now() + timedelta(hours=4)),
        ),
        headers=FHIR_JSON,
    )
    assert override.status_code == 200, override.text
    assert sees_region_entries(municipality.sip, plan_id)
    recorded = system.consent.get(f"/fhir/Consent/{block_id}").json()
    assert "Akut läge" in str(recorded["extension"])


@pytest.fixture
def stoppable_system(backend):
    """Both services, with a way to stop the consent service mid-test."""
    from services.consent.api import create_app as consent_app
    from services.sip.api import create_app as sip_app

    consent_server = serve(consent_app(backend.settings("consent")))
    consent_url = consent_server.__enter__()
    sip_server = serve(sip_app(backend.settings("sip", consent_service_url=consent_url)))
    system = System(sip_server.__enter__(), consent_url, backend.issuer)
    system.stop_consent = lambda: consent_server.__exit__(None, None, None)
    yield system
    system.close()
    sip_server.__exit__(None, None, None)


def test_consent_service_down_disclosures_refused_own_data_served(stoppable_system):
    system = stoppable_system
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    give(system, consent(personnummer))
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert sees_region_entries(municipality, plan_id)
    version = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["meta"]["versionId"]

    system.stop_consent()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{system.consent_url}/healthz", timeout=1)
    time.sleep(1.1)  # the cached permit is no longer trusted once the feed is out of reach
    refused = municipality.get(f"/fhir/CarePlan/{plan_id}")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert (
        municipality.post(
            f"/fhir/CarePlan/{plan_id}/$record-need", json=parameters(text="x"), headers=FHIR_JSON
        ).status_code
        == 503
    )
    activation = system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert activation.status_code == 503
    own = system.sip.get(f"/fhir/CarePlan/{plan_id}")
    assert own.status_code == 200
    assert own.json()["meta"]["versionId"] == version  # nothing written half-way
    assert (
        system.sip.post(
            f"/fhir/CarePlan/{plan_id}/$record-need",
            json=parameters(text="Sömn"),
            headers=FHIR_JSON,
        ).status_code
        == 200
    )  # the region keeps working on its own plan
