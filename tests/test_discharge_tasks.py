"""The stay's duties as FHIR Task over real HTTP (issue 17): one Task per duty, derived from the
stay's events and its legal clock, owned by the unit that must do it, due when the law says,
marked overdue at the server's instant; searched by owner, status, encounter/focus, overdue
and `_count`. Tried as an attacker and a careless client: an outsider (404, nothing found), a
token without the Task scope (403), malformed values (400 naming the parameter), and every
read and search in the person's access log. The stay is made through the application with
times in March 2026, so the server's clock finds its deadlines run out."""

from __future__ import annotations

import base64
from datetime import timedelta
from uuid import uuid4

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.fhir_time import fhir_instant
from services.sip.discharge.application import Stays
from services.sip.discharge.tasks import (
    EXT_DEADLINE_STATE,
    EXT_OVERDUE,
    EXT_PROVISIONAL,
    duties,
)
from tests.conftest import running_system
from tests.discharge_data import PHYSICIAN, local, noticed
from tests.discharge_data import actor as acting
from tests.discharge_http import PRIMARY, consent_to_the_stay
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    new_personnummer,
    withdrawal,
)

ADMITTED = local("2026-03-02")


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        yield system


def a_stay(system, given: list | None = None):
    """Noticed on time, contact named, ready on the person's consent a day later, the SIP never
    called, not discharged. (stay id, personnummer, ward, primary-care unit)."""
    personnummer = new_personnummer()
    consent_id = consent_to_the_stay(system, personnummer)
    if given is not None:
        given.append(consent_id)
    stays = Stays(system.sip_app.state.plans, system.sip_app.state.consent_gate_uncached)
    ward = f"SE2321000032-W{uuid4().hex[:6].upper()}"
    vc = f"SE2321000032-V{uuid4().hex[:6].upper()}"
    hospital, unit = acting(REGION, ward), acting(PRIMARY, vc)
    person = {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
    at = ADMITTED
    stay = stays.admit(subject=person, ward=ward, admitted_at=at, by=hospital)
    stays.judge_care_needed(stay.id, principals=["region", "municipality"], at=at, by=hospital)
    stays.send_admission_notice(
        stay.id, estimated_discharge=at + timedelta(days=3), at=at + timedelta(hours=1),
        by=hospital, judgement="LSU 2017:612: needed for the planning",
        recipients=[{"organization": PRIMARY, "unit": vc, "kind": "primary-care"},
                    {"organization": MUNICIPALITY, "unit": "K-SOC", "kind": "social-services"}],
    )  # fmt: skip
    stays.name_care_contact(stay.id, name="Svensson", already_existed=False,
                            at=at + timedelta(hours=2), by=unit, judgement="LSU")  # fmt: skip
    stays.notify_ready(stay.id, at=at + timedelta(days=1), by=hospital)  # on the consent
    return str(stay.id), personnummer, ward, vc


def ext(resource, url):
    return next((e for e in resource.get("extension", []) if e["url"] == url), None)


def tasks(client, **params):
    found = client.get("/fhir/Task", params=params)
    assert found.status_code == 200, found.text
    return {e["resource"]["id"]: e["resource"] for e in found.json().get("entry", [])}


def test_each_duty_is_a_task_owned_by_its_unit_due_when_the_law_says(system):
    stay_id, personnummer, ward, vc = a_stay(system)
    hospital = system.as_caller("professional", REGION).sip
    found = tasks(hospital, encounter=f"Encounter/{stay_id}")
    keys = ("admission-notice", "care-contact", "sip-call", "information-transfer")
    assert set(found) == {f"{stay_id}.{k}" for k in keys}
    notice = found[f"{stay_id}.admission-notice"]
    assert notice["status"] == "completed" and ext(notice, EXT_OVERDUE)["valueBoolean"] is False
    assert notice["owner"]["identifier"]["value"] == ward
    assert notice["restriction"]["period"]["end"] == fhir_instant(ADMITTED + timedelta(hours=24))
    assert notice["focus"] == notice["encounter"] == {"reference": f"Encounter/{stay_id}"}
    assert notice["for"]["identifier"]["value"] == personnummer
    contact = found[f"{stay_id}.care-contact"]
    assert contact["status"] == "completed" and "restriction" not in contact
    assert contact["owner"]["identifier"]["value"] == vc
    sip = found[f"{stay_id}.sip-call"]
    assert sip["status"] == "in-progress"  # the contact is named, the SIP not called
    assert ext(sip, EXT_OVERDUE)["valueBoolean"] is True
    assert ext(sip, EXT_DEADLINE_STATE)["valueCode"] == "overdue"
    due = ADMITTED + timedelta(days=4)  # ready a day after admission, + 72 hours
    assert sip["restriction"]["period"]["end"] == fhir_instant(due)
    assert sip["owner"]["identifier"]["value"] == vc
    transfer = found[f"{stay_id}.information-transfer"]
    # Due the estimated discharge day, provisional until the discharge: never overdue.
    assert transfer["status"] == "requested" and ext(transfer, EXT_PROVISIONAL)
    assert ext(transfer, EXT_OVERDUE)["valueBoolean"] is False
    read = hospital.get(f"/fhir/Task/{stay_id}.sip-call")
    assert read.status_code == 200 and read.json() == sip


def test_search_by_owner_status_focus_overdue_and_count(system):
    stay_id, _, ward, vc = a_stay(system)
    hospital = system.as_caller("professional", REGION).sip
    mine = {"focus": f"Encounter/{stay_id}"}
    assert set(tasks(hospital, overdue="true", **mine)) == {f"{stay_id}.sip-call"}
    assert len(tasks(hospital, overdue="false", **mine)) == 3
    assert set(tasks(hospital, owner=f"Organization/{vc}", **mine)) == {
        f"{stay_id}.care-contact", f"{stay_id}.sip-call"}  # fmt: skip
    assert set(tasks(hospital, owner=PRIMARY, **mine)) == set(tasks(hospital, owner=vc, **mine))
    assert set(tasks(hospital, owner=ward, **mine)) == {
        f"{stay_id}.admission-notice", f"{stay_id}.information-transfer"}  # fmt: skip
    assert len(tasks(hospital, status="completed", **mine)) == 2
    assert len(tasks(hospital, status="requested,in-progress", **mine)) == 2
    assert tasks(hospital, status="cancelled", **mine) == {}
    # Across stays: the overdue duties of primary care include this one.
    assert f"{stay_id}.sip-call" in tasks(hospital, owner=vc, overdue="true")
    page = hospital.get("/fhir/Task", params={"_count": "1", **mine}).json()
    assert page["total"] == 4 and len(page["entry"]) == 1
    posted = hospital.post("/fhir/Task/_search", data={"encounter": f"Encounter/{stay_id}"})
    assert posted.status_code == 200 and posted.json()["total"] == 4


def test_malformed_values_are_400_naming_the_parameter(system):
    hospital = system.as_caller("professional", REGION).sip
    for name, value in (("status", "done-ish"), ("overdue", "maybe"),
                        ("encounter", "Encounter/not-a-uuid"), ("focus", "x"),
                        ("owner", "not an hsa id"), ("_count", "-1"), ("ward", "x")):  # fmt: skip
        answer = hospital.get("/fhir/Task", params={name: value})
        assert answer.status_code == 400, (name, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome" and name in answer.text


def test_an_outsider_finds_nothing_and_reads_404_and_a_token_without_task_scope_is_403(system):
    stay_id, personnummer, _, _ = a_stay(system)
    outsider = system.as_caller("professional", OTHER_REGION).sip
    assert outsider.get(f"/fhir/Task/{stay_id}.sip-call").status_code == 404
    assert tasks(outsider, encounter=f"Encounter/{stay_id}") == {}
    hospital = system.as_caller("professional", REGION).sip
    for unknown in (f"{stay_id}.coffee", f"{uuid4()}.sip-call", "not-a-task"):
        assert hospital.get(f"/fhir/Task/{unknown}").status_code == 404
    plans_only = system.as_caller("integration", REGION, scopes=("system/CarePlan.rs",)).sip
    assert plans_only.get(f"/fhir/Task/{stay_id}.sip-call").status_code == 403
    assert plans_only.get("/fhir/Task").status_code == 403
    assert system.without_token.sip.get("/fhir/Task").status_code == 401
    other = system.as_caller("patient", None, patient=new_personnummer()).sip
    assert other.get(f"/fhir/Task/{stay_id}.sip-call").status_code == 404
    person = system.as_caller("patient", None, patient=personnummer).sip
    assert len(tasks(person, encounter=f"Encounter/{stay_id}")) == 4


def test_every_read_and_search_is_in_the_persons_access_log(system):
    stay_id, personnummer, _, _ = a_stay(system)
    municipality = system.as_caller("integration", MUNICIPALITY).sip
    assert municipality.get(f"/fhir/Task/{stay_id}.admission-notice").status_code == 200
    tasks(municipality, encounter=f"Encounter/{stay_id}", overdue="true")
    system.as_caller("professional", OTHER_REGION).sip.get(f"/fhir/Task/{stay_id}.sip-call")
    log = system.as_caller("auditor", REGION).sip.get(
        "/fhir/AuditEvent", params={"patient": personnummer, "_count": "100"}
    )
    assert log.status_code == 200
    text = log.text
    assert f"Task/{stay_id}.admission-notice" in text  # the read
    assert f"Task/{stay_id}.sip-call" in text  # the search's match, and the refused read


def test_a_duty_whose_step_rests_on_a_withdrawn_consent_is_not_shown(system):
    given: list[str] = []
    stay_id, personnummer, _, _ = a_stay(system, given)
    municipality = system.as_caller("integration", MUNICIPALITY).sip
    assert f"{stay_id}.sip-call" in tasks(municipality, encounter=f"Encounter/{stay_id}")
    withdrawn = system.consent.post(
        f"/fhir/Consent/{given[0]}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert withdrawn.status_code == 200, withdrawn.text
    system.settle()
    # The ready notice rested on the consent: its SIP call would tell when the person was
    # ready, so it is not shown; the other duties are.
    assert set(tasks(municipality, encounter=f"Encounter/{stay_id}")) == {
        f"{stay_id}.admission-notice", f"{stay_id}.care-contact",
        f"{stay_id}.information-transfer"}  # fmt: skip
    assert municipality.get(f"/fhir/Task/{stay_id}.sip-call").status_code == 404
    # Nor in its history: every version is read through the disclosure of now.
    assert municipality.get(f"/fhir/Task/{stay_id}.sip-call/_history").status_code == 404
    assert municipality.get(f"/fhir/Task/{stay_id}.sip-call/_history/5").status_code == 404
    typed = history(municipality, "/fhir/Task/_history", _count="1000")
    assert f"{stay_id}.sip-call" not in {t["id"] for t in typed}
    person = system.as_caller("patient", None, patient=personnummer).sip
    assert person.get(f"/fhir/Task/{stay_id}.sip-call").status_code == 200


def test_a_notice_withdrawn_before_its_due_time_cancels_its_sip_call():
    stay = noticed(ADMITTED)
    stay.name_care_contact(name="S", already_existed=False, legal_basis={
        "basis": "secrecy-judgement", "judgement": "LSU"}, at=ADMITTED + timedelta(hours=3),
        by=acting("SE2321000131-P1", "SE2321000131-P1-VC"))  # fmt: skip
    judged = {"basis": "secrecy-judgement", "judgement": "LSU"}
    stay.notify_ready(legal_basis=judged, at=ADMITTED + timedelta(days=1), by=PHYSICIAN)
    stay.withdraw_ready(reason="feber", legal_basis=judged, at=ADMITTED + timedelta(days=2),
                        by=PHYSICIAN)  # fmt: skip
    stay.notify_ready(legal_basis=judged, at=ADMITTED + timedelta(days=5), by=PHYSICIAN)
    found = {d.key: d for d in duties(stay, ADMITTED + timedelta(days=20))}
    assert found["sip-call"].status == "cancelled" and not found["sip-call"].overdue
    assert found["sip-call-2"].overdue and found["sip-call-2"].status == "in-progress"


def history(client, path, **params):
    found = client.get(path, params=params)
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def test_a_tasks_versions_are_the_stay_versions_that_changed_it_each_read_again_by_vread(system):
    stay_id, personnummer, _, _ = a_stay(system)
    hospital = system.as_caller("professional", REGION).sip
    contact_id = f"{stay_id}.care-contact"
    # Noticed (stay version 3): the primary-care unit is to name the contact; named (4).
    versions = history(hospital, f"/fhir/Task/{contact_id}/_history")
    assert [(v["meta"]["versionId"], v["status"]) for v in versions] == [
        ("4", "completed"), ("3", "requested")]  # fmt: skip
    for version in versions:
        vid = version["meta"]["versionId"]
        read = hospital.get(f"/fhir/Task/{contact_id}/_history/{vid}")
        assert read.status_code == 200 and read.json() == version
    # Read now, it is the stay's current version (5, the ready notice), as vread reads it.
    current = hospital.get(f"/fhir/Task/{contact_id}").json()
    assert current["meta"]["versionId"] == "5"
    assert current == hospital.get(f"/fhir/Task/{contact_id}/_history/5").json()
    # A version before the duty arose, past the stay's last, or no number: 404.
    for vid in ("1", "2", "6", "99", "0", "-1", "x"):
        answer = hospital.get(f"/fhir/Task/{contact_id}/_history/{vid}")
        assert answer.status_code == 404, (vid, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome"
    for unknown in (f"{stay_id}.coffee", f"{uuid4()}.sip-call", "not-a-task", f"{stay_id}"):
        assert hospital.get(f"/fhir/Task/{unknown}/_history").status_code == 404
        assert hospital.get(f"/fhir/Task/{unknown}/_history/1").status_code == 404
    typed = history(hospital, "/fhir/Task/_history", _count="1000")
    assert {(t["id"], t["meta"]["versionId"]) for t in typed if t["id"] == contact_id} == {
        (contact_id, "3"), (contact_id, "4")}  # fmt: skip
    assert all(t["resourceType"] == "Task" for t in typed)
    log = system.as_caller("auditor", REGION).sip.get(
        "/fhir/AuditEvent", params={"patient": personnummer, "_count": "100"}
    )
    assert f"Task/{contact_id}/_history" in log.text and f"Task/{contact_id}/_history/3" in log.text


def test_an_outsider_or_a_stranger_gets_404_on_a_tasks_versions_and_none_in_the_type_history(
    system,
):
    stay_id, _, _, _ = a_stay(system)
    sip_call = f"{stay_id}.sip-call"
    for caller in (system.as_caller("professional", OTHER_REGION).sip,
                   system.as_caller("patient", None, patient=new_personnummer()).sip):  # fmt: skip
        assert caller.get(f"/fhir/Task/{sip_call}/_history").status_code == 404
        assert caller.get(f"/fhir/Task/{sip_call}/_history/5").status_code == 404
        assert caller.get(f"/fhir/Task/{sip_call}", params={"_at": "2030-01-01"}).status_code == 404
        typed = history(caller, "/fhir/Task/_history", _count="1000")
        assert not [t for t in typed if t["id"].startswith(stay_id)]
    plans_only = system.as_caller("integration", REGION, scopes=("system/CarePlan.rs",)).sip
    assert plans_only.get(f"/fhir/Task/{sip_call}/_history/5").status_code == 403
    assert plans_only.get("/fhir/Task/_history").status_code == 403
    assert system.without_token.sip.get(f"/fhir/Task/{sip_call}/_history").status_code == 401
    hospital = system.as_caller("professional", REGION).sip
    for name, value in (("_count", "-1"), ("_count", "many"), ("_since", "yesterday"),
                        ("_sort", "_lastUpdated"), ("status", "completed")):  # fmt: skip
        answer = hospital.get(f"/fhir/Task/{sip_call}/_history", params={name: value})
        assert answer.status_code == 400 and name in answer.text, (name, answer.text)


def test_a_search_pages_by_count_with_next_links_that_visit_each_task_once(system):
    stay_id, personnummer, _, _ = a_stay(system)
    hospital = system.as_caller("professional", REGION).sip
    seen: list[str] = []
    page = hospital.get("/fhir/Task", params={"encounter": f"Encounter/{stay_id}", "_count": "3"})
    while True:
        assert page.status_code == 200, page.text
        bundle = page.json()
        assert bundle["total"] == 4
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        assert "Encounter" not in following[0]  # the query travels sealed in the cursor
        page = hospital.get("/fhir" + following[0].split("/fhir", 1)[1])
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 4
    # A cursor is for its own search: tampered, or with a parameter beside it, it is a 400.
    first = hospital.get("/fhir/Task", params={"encounter": f"Encounter/{stay_id}", "_count": "1"})
    cursor = next(link["url"] for link in first.json()["link"] if link["relation"] == "next")
    path = "/fhir" + cursor.split("/fhir", 1)[1]
    assert hospital.get(path[:-3] + "abc").status_code == 400
    assert hospital.get(path + "&status=completed").status_code == 400
    # A next page's access record names the search asked, not the sealed cursor.
    log = system.as_caller("auditor", REGION).sip.get(
        "/fhir/AuditEvent", params={"patient": personnummer, "_count": "100"}
    )
    assert log.status_code == 200, log.text
    queries = [
        base64.b64decode(entity["query"]).decode()
        for entry in log.json()["entry"]
        for entity in entry["resource"].get("entity", [])
        if "query" in entity
    ]
    assert len(queries) == 3  # the two pages followed and the first of _count=1
    assert all(q.startswith(f"encounter=Encounter%2F{stay_id}&_count=") for q in queries), queries
    # Followed by an outsider, the cursor shows nothing of the stay.
    outsider = system.as_caller("professional", OTHER_REGION).sip
    answer = outsider.get(path)
    assert answer.status_code == 200 and not answer.json().get("entry")
    for count in ("-1", "x", "1.5", "100000"):
        answer = hospital.get("/fhir/Task", params={"_count": count})
        assert answer.status_code == 400 and "_count" in answer.text, (count, answer.text)
