"""The access log: a scripted sequence of accesses, and the AuditEvents and the patient's log
extract that must match it exactly."""

from fhir.resources.R4B.auditevent import AuditEvent

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.settings import SERVICE_HSA_ID
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    run,
)

UNIT = "SE2321000032-U0042"


def summary(event):
    """(action, interaction, outcome, user, organisation) of one AuditEvent."""
    AuditEvent.model_validate(event)
    user = event["agent"][0]["who"]["identifier"]["value"]
    organization = next((a["who"]["identifier"]["value"] for a in event["agent"][1:]), None)
    return (event["action"], event["subtype"][0]["code"], event["outcome"], user, organization)


def test_a_scripted_sequence_of_accesses_is_logged_exactly(system):
    personnummer = new_personnummer()
    subject = f"{PERSONNUMMER_SYSTEM}|{personnummer}"
    coordinator = system.as_caller("coordinator", subject="anna", unit=UNIT)
    outsider = system.as_caller("coordinator", organization=OTHER_REGION, subject="olle")
    patient = system.as_caller("patient", organization=None, patient=personnummer,
                               subject="tolvan")  # fmt: skip

    consent_id = coordinator.consent.post(
        "/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON
    ).json()["id"]
    # The SIP service reads the new consent from the consent service's log: an access too.
    system.settle()
    plan_id = coordinator.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(coordinator.sip, plan_id)
    assert coordinator.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 200
    assert (
        coordinator.sip.get("/fhir/CarePlan", params={"subject:identifier": subject}).json()[
            "total"
        ]
        == 1
    )
    assert coordinator.sip.post(f"/fhir/CarePlan/{plan_id}/$activate").status_code == 200
    assert outsider.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 404
    assert patient.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 200

    auditor = system.as_caller("auditor", subject="ivo")
    sip_log = auditor.sip.get("/fhir/AuditEvent", params={"patient:identifier": subject}).json()
    assert [summary(e["resource"]) for e in sip_log["entry"]] == [
        ("C", "create", "0", "anna", REGION),
        *[("E", "operation", "0", "anna", REGION)] * 5,
        ("R", "read", "0", "anna", REGION),
        ("R", "search-type", "0", "anna", REGION),
        ("E", "operation", "0", "anna", REGION),
        ("R", "read", "4", "olle", OTHER_REGION),
        ("R", "read", "0", "tolvan", None),
    ]
    first = sip_log["entry"][0]["resource"]
    assert first["agent"][1]["location"]["identifier"]["value"] == UNIT
    assert f"CarePlan/{plan_id}/_history/1" in [
        entity["what"].get("reference") for entity in first["entity"] if "what" in entity
    ]
    consent_log = auditor.consent.get(
        "/fhir/AuditEvent", params={"patient:identifier": subject}
    ).json()
    decisions = [summary(e["resource"]) for e in consent_log["entry"]]
    assert decisions == [
        ("C", "create", "0", "anna", REGION),
        ("R", "event-feed", "0", "sip-service", SERVICE_HSA_ID),
        ("E", "disclosure-decision", "0", "sip-service", SERVICE_HSA_ID),
    ]
    decision = consent_log["entry"][2]["resource"]
    assert decision["outcomeDesc"].startswith("permit: consent-in-force")
    assert {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{consent_id}"} in [
        entity["what"].get("identifier") for entity in decision["entity"] if "what" in entity
    ]

    extract = patient.sip.get(f"/fhir/Patient/{personnummer}/$access-log").json()
    assert [(e["organization"], e["role"], e["what"]) for e in extract["entries"]] == [
        (REGION, "coordinator", "created your consent"),
        (SERVICE_HSA_ID, "integration", "read your consent"),
        (REGION, "coordinator", "created your coordinated individual plan (SIP)"),
        *[(REGION, "coordinator", "acted on your coordinated individual plan (SIP)")] * 5,
        (REGION, "coordinator", "read your coordinated individual plan (SIP)"),
        (REGION, "coordinator", "read your coordinated individual plan (SIP)"),
        (REGION, "coordinator", "acted on your coordinated individual plan (SIP)"),
        # Activation asks both ways between the principals (region→municipality and back).
        *[(SERVICE_HSA_ID, "integration", "acted on whether your consent allows a disclosure")] * 2,
        (None, "patient", "read your coordinated individual plan (SIP)"),
    ]
    assert extract["entries"][0]["unit"] == UNIT
    page = patient.sip.get(f"/fhir/Patient/{personnummer}/$access-log",
                           params={"_format": "html"})  # fmt: skip
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count("<tr><td>") == len(extract["entries"])
    assert personnummer not in page.text


def test_the_extract_is_for_the_person_or_an_auditor(system):
    personnummer = new_personnummer()
    other = system.as_caller("patient", organization=None, patient=new_personnummer())
    assert other.sip.get(f"/fhir/Patient/{personnummer}/$access-log").status_code == 403
    assert system.sip.get(f"/fhir/Patient/{personnummer}/$access-log").status_code == 403
    invalid = system.as_caller("auditor").sip.get("/fhir/Patient/191212121213/$access-log")
    assert invalid.status_code == 400
    assert "191212121213" not in invalid.text


def test_the_log_extract_is_a_fhir_parameters_where_fhir_is_asked_for(system):
    from fhir.resources.R4B.parameters import Parameters

    personnummer = new_personnummer()
    system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    person = system.as_caller("patient", None, patient=personnummer)
    for asked in (
        {"headers": {"Accept": "application/fhir+json"}},
        {"params": {"_format": "json"}},
    ):
        answer = person.sip.get(f"/fhir/Patient/{personnummer}/$access-log", **asked)
        assert answer.status_code == 200
        extract = Parameters.model_validate(answer.json())  # a valid R4 resource
        names = [p.name for p in extract.parameter]
        assert names[:2] == ["patient", "generated"] and "entry" in names
        entry = next(p for p in extract.parameter if p.name == "entry")
        assert {"time", "what", "service"} <= {part.name for part in entry.part}
    plain = person.sip.get(f"/fhir/Patient/{personnummer}/$access-log")
    assert "entries" in plain.json()  # application/json keeps its plain shape


def test_the_ways_in_this_stop_added_are_logged_exactly(system):
    """A conditional create that finds the plan (a read), accepting an invitation, an
    outsider's attempt at it, and the person's rejection of a proposal."""
    personnummer = new_personnummer()
    subject = f"{PERSONNUMMER_SYSTEM}|{personnummer}"
    region = system.as_caller("coordinator", subject="anna")
    municipality = system.as_caller("coordinator", MUNICIPALITY, subject="mona")
    outsider = system.as_caller("coordinator", OTHER_REGION, subject="olle")
    patient = system.as_caller("patient", None, patient=personnummer, subject="tolvan")
    region.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    system.settle()
    identifier = {"system": "https://ehr.region.example/sip", "value": f"p-{personnummer}"}
    body = {**care_plan(personnummer), "identifier": [identifier]}
    plan_id = region.sip.post("/fhir/CarePlan", json=body, headers=FHIR_JSON).json()["id"]
    found = region.sip.post(
        "/fhir/CarePlan",
        json=body,
        headers={**FHIR_JSON, "If-None-Exist": f"identifier={identifier['system']}|"
                 f"{identifier['value']}"},
    )  # fmt: skip
    assert found.status_code == 200 and found.json()["id"] == plan_id
    prepare_for_activation(region.sip, plan_id)
    assert run(municipality.sip, plan_id, "accept-invitation").status_code == 200
    assert run(outsider.sip, plan_id, "accept-invitation").status_code == 404
    assert region.sip.post(f"/fhir/CarePlan/{plan_id}/$activate").status_code == 200
    proposed = run(region.sip, plan_id, "set-follow-up", date="2027-05-01")
    assert proposed.status_code == 200
    assert run(patient.sip, plan_id, "reject-changes").status_code == 200

    auditor = system.as_caller("auditor", subject="ivo")
    log = auditor.sip.get("/fhir/AuditEvent", params={"patient:identifier": subject}).json()
    assert [summary(e["resource"]) for e in log["entry"]] == [
        ("C", "create", "0", "anna", REGION),
        ("R", "read", "0", "anna", REGION),  # the conditional create's answer
        *[("E", "operation", "0", "anna", REGION)] * 5,
        ("E", "operation", "0", "mona", MUNICIPALITY),
        ("E", "operation", "4", "olle", OTHER_REGION),  # refused, and logged as such
        *[("E", "operation", "0", "anna", REGION)] * 2,
        ("E", "operation", "0", "tolvan", None),
    ]
