"""`$check` answers only for the caller's own organisation (issue 12), over real HTTP on both
backends: the requester is the token's organisation; only the trusted peer (the SIP service)
names another; a deny says "not permitted" and nothing else; only a permit to the peer names
the consents relied on."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.consent_decision import NOT_PERMITTED, ConsentCheckRequest, ConsentDecision
from contracts.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM
from services.common.fhir_time import fhir_instant
from services.common.settings import SERVICE_HSA_ID, SERVICE_SUBJECT
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
)


def check_body(pnr: str, actor: str | None = None, source: str = REGION) -> dict:
    parameter: list[dict[str, Any]] = [
        {"name": "patient", "valueIdentifier": {"system": PERSONNUMMER_SYSTEM, "value": pnr}},
        {"name": "source", "valueIdentifier": {"system": HSA_ID_SYSTEM, "value": source}},
        {"name": "category", "valueCode": "sip-plan"},
    ]
    if actor is not None:
        parameter.append(
            {"name": "actor", "valueIdentifier": {"system": HSA_ID_SYSTEM, "value": actor}}
        )
    return {"resourceType": "Parameters", "parameter": parameter}


def ask(caller, personnummer: str, actor: str | None = None) -> Any:
    return caller.consent.post(
        "/fhir/Consent/$check", json=check_body(personnummer, actor), headers=FHIR_JSON
    )


def given(system, resource: dict[str, Any]) -> str:
    response = system.consent.post("/fhir/Consent", json=resource, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def a_person_with_a_consent_and_a_block(system) -> tuple[str, str, str]:
    personnummer = new_personnummer()
    consent_id = given(system, consent(personnummer))
    block = consent(personnummer, organizations=(REGION,), categories=())
    block["provision"]["type"] = "deny"
    return personnummer, consent_id, given(system, block)


def peer(system):
    return system.as_caller("integration", SERVICE_HSA_ID, subject=SERVICE_SUBJECT)


def test_an_outsider_learns_nothing_about_anyone(system):
    personnummer, consent_id, block_id = a_person_with_a_consent_and_a_block(system)
    unblocked = new_personnummer()
    unblocked_consent = given(system, consent(unblocked))
    outsider = system.as_caller("integration", organization=OTHER_REGION)
    for person in (personnummer, unblocked, new_personnummer()):
        answer = ask(outsider, person)
        assert answer.status_code == 200, answer.text
        decision = ConsentDecision.from_parameters(answer.json())
        assert (decision.decision, decision.reason, decision.consents) == (
            "deny",
            NOT_PERMITTED,
            (),
        )
        for secret in (consent_id, block_id, unblocked_consent, MUNICIPALITY):
            assert secret not in answer.text
        # Every deny reads the same, whatever stood in the way.
        assert answer.json() == {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "decision", "valueCode": "deny"},
                {"name": "reason", "valueString": NOT_PERMITTED},
            ],
        }


@pytest.mark.parametrize("named", [MUNICIPALITY, REGION])
def test_naming_another_organisation_is_refused_unless_a_trusted_peer(system, named):
    personnummer = new_personnummer()
    given(system, consent(personnummer))
    for caller in (
        system.as_caller("integration", organization=OTHER_REGION),
        system.as_caller("integration", organization=OTHER_REGION, subject="sip-servic"),
    ):
        refused = ask(caller, personnummer, actor=named)
        assert refused.status_code == 403, refused.text
        assert "actor" in refused.json()["issue"][0]["diagnostics"]
    assert ConsentDecision.from_parameters(ask(peer(system), personnummer, named).json()).permitted
    # The attempts are in the log of the organisation whose information was asked about.
    log = system.as_caller("auditor", organization=REGION).consent.get(
        "/fhir/AuditEvent",
        params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}", "action": "E"},
    )
    refused = [e["resource"] for e in log.json()["entry"] if e["resource"]["outcome"] == "4"]
    assert [e["agent"][1]["who"]["identifier"]["value"] for e in refused] == [OTHER_REGION] * 2
    assert all("actor" in e["outcomeDesc"] for e in refused)


def test_only_systems_ask(system):
    personnummer = new_personnummer()
    given(system, consent(personnummer))
    for role in ("coordinator", "professional", "auditor"):
        caller = system.as_caller(role, organization=MUNICIPALITY, scopes=("user/Consent.crus",))
        assert ask(caller, personnummer).status_code == 403, role


def test_an_organisation_asking_for_itself_gets_a_bare_permit(system):
    personnummer = new_personnummer()
    consent_id = given(
        system, consent(personnummer, period={"start": "2026-01-01", "end": "2099-06-30"})
    )
    municipality = system.as_caller("integration", organization=MUNICIPALITY)
    for actor in (None, MUNICIPALITY):  # naming itself is the same as naming nobody
        answer = ask(municipality, personnummer, actor)
        assert answer.status_code == 200, answer.text
        decision = ConsentDecision.from_parameters(answer.json())
        assert (decision.decision, decision.consents) == ("permit", ())
        assert consent_id not in answer.text
        # The end of the consent's period, as the consent service reads it.
        period = system.consent.get(f"/fhir/Consent/{consent_id}").json()["provision"]["period"]
        assert decision.valid_until is not None
        assert fhir_instant(decision.valid_until) == period["end"]


def test_the_peer_is_told_the_consents_a_permit_relied_on_and_nothing_of_a_deny(system):
    personnummer, consent_id, block_id = a_person_with_a_consent_and_a_block(system)
    denied = ask(peer(system), personnummer, MUNICIPALITY)
    assert ConsentDecision.from_parameters(denied.json()).reason == NOT_PERMITTED
    assert block_id not in denied.text
    other = new_personnummer()
    other_consent = given(system, consent(other))
    permitted = ConsentDecision.from_parameters(ask(peer(system), other, MUNICIPALITY).json())
    assert (permitted.decision, permitted.consents) == ("permit", (other_consent,))
    assert consent_id != other_consent


def test_the_sip_service_still_activates_and_discloses_on_consent(system):
    personnummer = new_personnummer()
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    refused = system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert refused.status_code == 409
    assert NOT_PERMITTED in refused.json()["issue"][0]["diagnostics"]
    consent_id = given(system, consent(personnummer))
    activated = system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert activated.status_code == 200, activated.text
    assert consent_id in str(activated.json()["supportingInfo"])
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert municipality.get(f"/fhir/CarePlan/{plan_id}").status_code == 200
    # The SIP service's access log names the consent the disclosure relied on.
    log = system.as_caller("auditor", organization=MUNICIPALITY).sip.get(
        "/fhir/AuditEvent",
        params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}", "action": "R"},
    )
    assert consent_id in log.text


def test_the_request_model_still_names_the_requester_for_the_peer():
    request = ConsentCheckRequest(
        patient_system=PERSONNUMMER_SYSTEM,
        patient_value="191212121212",
        actor=MUNICIPALITY,
        source=REGION,
        category="sip-plan",
    )
    assert ConsentCheckRequest.from_parameters(request.to_parameters()) == request
