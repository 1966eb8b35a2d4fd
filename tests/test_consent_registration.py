"""Who may register a consent or a block (issue 12), over real HTTP on both backends: the
person with their own token, or staff of an organisation it names; nobody else. The form
and who took it are recorded; a child consents alone only with a recorded maturity
judgement."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.canonical import EXT_CONSENT_FORM, EXT_CONSENT_GIVER_ROLE, EXT_RECORDED_BY
from contracts.consent_decision import ConsentCheckRequest, ConsentDecision
from contracts.identifiers import PERSONNUMMER_SYSTEM, with_check_digit
from services.common.settings import SERVICE_HSA_ID, SERVICE_SUBJECT
from services.consent.fhir_mapping import EXT_MATURITY_JUDGEMENT
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    person,
    prepare_for_activation,
    sees_region_entries,
)
from tests.servers import wait_until

_children = iter(range(300, 400))


def new_child() -> str:
    return with_check_digit(f"20150607{next(_children):03d}")


def block(personnummer: str, blocked: str = REGION) -> dict[str, Any]:
    resource = consent(personnummer, organizations=(blocked,), categories=())
    resource["provision"]["type"] = "deny"
    return resource


def with_form(resource: dict[str, Any], form: str) -> dict[str, Any]:
    resource["extension"] = [{"url": EXT_CONSENT_FORM, "valueCode": form}]
    return resource


def consents_of(system, personnummer: str) -> list[dict[str, Any]]:
    """Every consent and block of the person, as the region (named in all of them) sees."""
    bundle = system.consent.get(
        "/fhir/Consent", params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}
    ).json()
    return [entry["resource"] for entry in bundle["entry"]]


def shared_plan(system, personnummer: str) -> str:
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    return plan_id


def peer_check(system, personnummer: str, actor: str = MUNICIPALITY) -> ConsentDecision:
    peer = system.as_caller("integration", SERVICE_HSA_ID, subject=SERVICE_SUBJECT).consent
    request = ConsentCheckRequest(
        patient_system=PERSONNUMMER_SYSTEM,
        patient_value=personnummer,
        actor=actor,
        source=REGION,
        category="sip-plan",
    )
    response = peer.post("/fhir/Consent/$check", json=request.to_parameters(), headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return ConsentDecision.from_parameters(response.json())


@pytest.mark.parametrize("role", ["coordinator", "professional", "integration"])
def test_an_outsider_cannot_place_a_block_and_nothing_changes(system, role):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert sees_region_entries(municipality, plan_id)

    outsider = system.as_caller(
        role, organization=OTHER_REGION, scopes=("user/Consent.crus", "system/Consent.crus")
    )
    refused = outsider.consent.post("/fhir/Consent", json=block(personnummer), headers=FHIR_JSON)
    assert refused.status_code == 403, refused.text
    assert refused.json()["issue"][0]["code"] == "forbidden"
    assert [c["provision"]["type"] for c in consents_of(system, personnummer)] == ["permit"]
    # B keeps its access: nothing was blocked.
    assert not wait_until(lambda: not sees_region_entries(municipality, plan_id), seconds=0.5)


def test_an_outsider_cannot_grant_itself_or_others_a_consent(system):
    personnummer = new_personnummer()
    outsider = system.as_caller(organization=OTHER_REGION)
    for organizations in ((REGION, MUNICIPALITY), (REGION,)):
        refused = outsider.consent.post(
            "/fhir/Consent",
            json=consent(personnummer, organizations=organizations),
            headers=FHIR_JSON,
        )
        assert refused.status_code == 403, refused.text
    assert consents_of(system, personnummer) == []
    assert peer_check(system, personnummer).decision == "deny"


def test_a_refused_registration_is_in_the_named_organisations_log(system):
    personnummer = new_personnummer()
    outsider = system.as_caller(organization=OTHER_REGION)
    outsider.consent.post("/fhir/Consent", json=block(personnummer), headers=FHIR_JSON)
    log = system.as_caller("auditor").consent.get(
        "/fhir/AuditEvent",
        params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}", "action": "C"},
    )
    events = [e["resource"] for e in log.json()["entry"]]
    assert [(e["outcome"], e["agent"][1]["who"]["identifier"]["value"]) for e in events] == [
        ("4", OTHER_REGION)
    ]
    assert "registration refused" in events[0]["outcomeDesc"]


def test_the_person_registers_their_own_block_and_consent_digitally(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    me = system.as_caller("patient", organization=None, patient=personnummer)
    given = me.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    assert given.status_code == 201, given.text
    assert {"url": EXT_CONSENT_FORM, "valueCode": "digital"} in given.json()["extension"]
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert sees_region_entries(municipality, plan_id)

    blocked = me.consent.post("/fhir/Consent", json=block(personnummer), headers=FHIR_JSON)
    assert blocked.status_code == 201, blocked.text
    assert wait_until(lambda: not sees_region_entries(municipality, plan_id), seconds=1.0)
    on_paper = me.consent.post(
        "/fhir/Consent", json=with_form(consent(personnummer), "written"), headers=FHIR_JSON
    )
    assert on_paper.status_code == 422
    assert on_paper.json()["issue"][0]["details"]["text"] == "consent-form"

    someone_else = new_personnummer()
    for resource in (consent(someone_else), block(someone_else)):
        refused = me.consent.post("/fhir/Consent", json=resource, headers=FHIR_JSON)
        assert refused.status_code == 403, refused.text
    assert consents_of(system, someone_else) == []


def test_staff_record_the_form_and_who_took_it(system):
    personnummer = new_personnummer()
    professional = system.as_caller(
        "professional", organization=MUNICIPALITY, subject="ssk-1", scopes=("user/Consent.crus",)
    )
    oral = professional.consent.post(
        "/fhir/Consent", json=with_form(consent(personnummer), "oral"), headers=FHIR_JSON
    )
    assert oral.status_code == 201, oral.text
    extensions = oral.json()["extension"]
    assert {"url": EXT_CONSENT_FORM, "valueCode": "oral"} in extensions
    recorded_by = next(e for e in extensions if e["url"] == EXT_RECORDED_BY)
    assert {"url": "subject", "valueString": "ssk-1"} in recorded_by["extension"]
    assert MUNICIPALITY in str(recorded_by)
    refused = professional.consent.post(
        "/fhir/Consent", json=with_form(consent(personnummer), "telepathic"), headers=FHIR_JSON
    )
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["details"]["text"] == "consent-form"
    assert len(consents_of(system, personnummer)) == 1


def child_giver(child: str, judgement: dict[str, Any] | None = None, mature: bool = False):
    parts = [{"url": "role", "valueCode": "child"}]
    if mature:
        parts.append({"url": "mature", "valueBoolean": True})
    extensions: list[dict[str, Any]] = [{"url": EXT_CONSENT_GIVER_ROLE, "extension": parts}]
    if judgement is not None:
        extensions.append({"url": EXT_MATURITY_JUDGEMENT, "extension": judgement})
    return {"identifier": person(child), "extension": extensions}


JUDGEMENT = [
    {"url": "assessor", "valueReference": {"display": "Kurator Anna Berg, elevhälsan"}},
    {"url": "date", "valueDateTime": "2026-10-01T10:00:00Z"},
    {"url": "basis", "valueString": "Samtal med eleven; förstår vad samtycket innebär"},
]


@pytest.mark.parametrize(
    ("giver", "element"),
    [
        ({}, "consent-maturity-judgement"),
        ({"mature": True}, "consent-maturity-judgement"),  # the bare staff-set flag
        ({"judgement": JUDGEMENT[:2]}, "basis"),
        ({"judgement": JUDGEMENT[1:]}, "assessor"),
        ({"judgement": [JUDGEMENT[0], JUDGEMENT[2]]}, "date"),
        ({"judgement": [*JUDGEMENT[::2], {"url": "date", "valueDateTime": "2099-01-01"}]}, "date"),
    ],
    ids=["none", "flag-only", "no-basis", "no-assessor", "no-date", "future-date"],
)
def test_a_childs_own_consent_without_a_maturity_judgement_is_refused(system, giver, element):
    child = new_child()
    resource = consent(child)
    resource["performer"] = [
        child_giver(child, giver.get("judgement"), mature=giver.get("mature", False))
    ]
    refused = system.consent.post("/fhir/Consent", json=resource, headers=FHIR_JSON)
    assert refused.status_code == 422, refused.text
    issue = refused.json()["issue"][0]
    assert issue["details"]["text"] == "consent-maturity-judgement"
    assert element in issue["diagnostics"] and "performer[0]" in issue["diagnostics"]
    assert consents_of(system, child) == []


def test_a_child_judged_mature_consents_alone_and_the_judgement_is_recorded(system):
    child = new_child()
    resource = consent(child)
    resource["performer"] = [child_giver(child, JUDGEMENT)]
    given = system.consent.post("/fhir/Consent", json=resource, headers=FHIR_JSON)
    assert given.status_code == 201, given.text
    performer = given.json()["performer"][0]
    judgement = next(e for e in performer["extension"] if e["url"] == EXT_MATURITY_JUDGEMENT)
    assert {"url": "basis", "valueString": JUDGEMENT[2]["valueString"]} in judgement["extension"]
    assert "Kurator Anna Berg" in str(judgement)
    assert peer_check(system, child).decision == "permit"

    # The child cannot record a judgement of themself with their own token.
    me = system.as_caller("patient", organization=None, patient=child)
    by_the_child = me.consent.post("/fhir/Consent", json=resource, headers=FHIR_JSON)
    assert by_the_child.status_code == 422
    assert by_the_child.json()["issue"][0]["details"]["text"] == "consent-maturity-judgement"
