"""The result parameters and the common search parameters over real HTTP, on SQLite and
PostgreSQL: `_summary=true`, `_elements` (tagged SUBSETTED, never more than the caller may
see), `_total`, `_id`, `_lastUpdated`, `_sort` (each item exactly once while writes happen
between pages), `subject` as a reference, the AuditEvent and Provenance searches paged, and
careless or hostile values refused with a 400 naming the parameter."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.result_parameters import SUBSETTED
from services.common.search_declarations import values_of
from tests.fhir_data import MUNICIPALITY, OTHER_REGION, consent, new_personnummer, run
from tests.test_entry_custodians import SECRETS, shared_plan
from tests.test_paging import every_page, follow, ids_of, link, new_plans, search_by_post


def subsetted(resource: dict[str, Any]) -> bool:
    return any(tag["code"] == SUBSETTED["code"] for tag in resource["meta"].get("tag", []))


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])]


def posted(client: httpx.Client, resource_type: str, *pairs: tuple[str, str]) -> httpx.Response:
    """A search by POST with repeated fields (httpx's `data` dict cannot repeat one)."""
    return client.post(
        f"/fhir/{resource_type}/_search",
        content=urlencode(pairs),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def test_summary_true_and_elements_show_a_tagged_subset(system):
    personnummer = new_personnummer()
    new_plans(system.sip, personnummer, 2)
    subject = {"subject:identifier": personnummer}
    summary = search_by_post(system.sip, "CarePlan", **subject, _summary="true")
    for plan in resources(summary):
        assert subsetted(plan)
        assert {"status", "intent", "subject"} <= set(plan)
        assert not {"activity", "contained", "note", "careTeam", "goal"} & set(plan)
    chosen = search_by_post(system.sip, "CarePlan", **subject, _elements="status,period")
    assert summary["total"] == chosen["total"] == 2
    for plan in resources(chosen):
        assert set(plan) <= {"resourceType", "id", "meta", "status", "period"}
        assert subsetted(plan)
    whole = search_by_post(system.sip, "CarePlan", **subject)
    assert not any(subsetted(plan) for plan in resources(whole))


def test_elements_and_summaries_never_reveal_a_withheld_entry(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)  # the municipality's entries, no consent
    every_element = "contained,activity,goal,extension,note,careTeam,addresses,description"
    for ask in ({"_elements": every_element}, {"_summary": "true"}, {"_summary": "data"}):
        found = search_by_post(system.sip, "CarePlan", _id=plan_id, **ask)
        assert found["total"] == 1
        for secret in SECRETS:
            assert secret not in str(found), ask
        history = system.sip.get(f"/fhir/CarePlan/{plan_id}/_history", params=ask)
        assert history.status_code == 200, history.text
        for secret in SECRETS:
            assert secret not in history.text, ask
    # The municipality, whose entries they are, sees its own through the same subset.
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    own = search_by_post(municipality, "CarePlan", _id=plan_id, _elements="contained")
    assert SECRETS[0] in str(own)


def test_an_outsider_is_never_counted_whatever_total_is_asked(system):
    personnummer = new_personnummer()
    new_plans(system.sip, personnummer, 3)
    outsider = system.as_caller("coordinator", organization=OTHER_REGION).sip
    subject = {"subject:identifier": personnummer}
    for total in ("accurate", "estimate"):
        assert search_by_post(outsider, "CarePlan", **subject, _total=total)["total"] == 0
        assert search_by_post(system.sip, "CarePlan", **subject, _total=total)["total"] == 3
    sorted_count = search_by_post(outsider, "CarePlan", **subject, _sort="-_lastUpdated")
    assert sorted_count["total"] == 0 and ids_of(sorted_count) == []
    none = search_by_post(system.sip, "CarePlan", **subject, _total="none", _count=1)
    assert "total" not in none and link(none, "next") is not None


def test_id_takes_commas_as_or_and_repeats_as_and(system):
    a, b, _ = sorted(new_plans(system.sip, new_personnummer(), 3))
    assert sorted(ids_of(search_by_post(system.sip, "CarePlan", _id=f"{a},{b}"))) == [a, b]
    both = posted(system.sip, "CarePlan", ("_id", a), ("_id", b))
    assert both.status_code == 200 and both.json()["total"] == 0
    unknown = search_by_post(system.sip, "CarePlan", _id="no-such-plan")
    assert unknown["total"] == 0


def test_last_updated_with_each_prefix(system):
    personnummer = new_personnummer()
    before = datetime.now(UTC) - timedelta(seconds=1)
    created = new_plans(system.sip, personnummer, 2)
    after = datetime.now(UTC) + timedelta(seconds=1)
    subject = ("subject:identifier", personnummer)

    def total(*values: str) -> int:
        response = posted(system.sip, "CarePlan", subject, *(("_lastUpdated", v) for v in values))
        assert response.status_code == 200, response.text
        return response.json()["total"]

    stamp = lambda moment: moment.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert total(f"ge{stamp(before)}") == total(f"gt{stamp(before)}") == len(created)
    assert total(f"le{stamp(before)}") == total(f"lt{stamp(before)}") == 0
    assert total(f"ge{stamp(before)}", f"le{stamp(after)}") == 2  # AND: within the window
    assert total(f"ge{stamp(after)}") == 0
    assert total(f"eq{before.date().isoformat()}", f"ge{stamp(before)}") in (0, 2)
    assert total(f"lt{stamp(before)},gt{stamp(before)}") == 2  # comma: either


def test_subject_and_patient_are_references_too(system):
    personnummer = new_personnummer()
    created = new_plans(system.sip, personnummer, 2)
    for name in ("subject", "patient"):
        for value in (f"Patient/{personnummer}", personnummer):
            found = search_by_post(system.sip, "CarePlan", **{name: value})
            assert set(ids_of(found)) == created, (name, value)
            assert all(personnummer not in x["url"] for x in found["link"])
    by_identifier = search_by_post(
        system.sip, "CarePlan", **{"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}
    )
    assert set(ids_of(by_identifier)) == created
    patient = system.as_caller("patient", organization=None, patient=personnummer)
    assert patient.consent.post("/fhir/Consent", json=consent(personnummer)).status_code == 201
    consents = search_by_post(system.consent, "Consent", patient=f"Patient/{personnummer}")
    assert consents["total"] == 1
    wrong = system.sip.post("/fhir/CarePlan/_search", data={"subject": "Group/7"})
    assert wrong.status_code == 400 and wrong.json()["issue"][0]["expression"] == ["subject"]


def test_sort_orders_by_last_updated_either_way(system):
    personnummer = new_personnummer()
    new_plans(system.sip, personnummer, 4)
    subject = {"subject:identifier": personnummer}
    for sort, newest_first in (("_lastUpdated", False), ("-_lastUpdated", True)):
        found = resources(search_by_post(system.sip, "CarePlan", **subject, _sort=sort))
        stamps = [plan["meta"]["lastUpdated"] for plan in found]
        assert stamps == sorted(stamps, reverse=newest_first), sort
    dated = search_by_post(system.sip, "CarePlan", **subject, _sort="-date,_lastUpdated")
    assert dated["total"] == 4


@pytest.mark.parametrize("sort", ["_lastUpdated", "-_lastUpdated"])
def test_sorted_paging_gives_each_item_exactly_once_while_writes_happen(system, sort):
    personnummer = new_personnummer()
    existing = new_plans(system.sip, personnummer, 12)
    first = search_by_post(
        system.sip, "CarePlan", **{"subject:identifier": personnummer}, _count=4, _sort=sort
    )
    seen_so_far = set(ids_of(first))
    added: set[str] = set()

    def write_between_pages() -> None:
        # A change moves a plan's lastUpdated to the end of the order: both one already
        # shown and one not yet shown are changed, and a new plan is made.
        for plan_id in (sorted(seen_so_far)[0], sorted(existing - seen_so_far)[0]):
            assert run(system.sip, plan_id, "record-need", text="ett behov").status_code == 200
        added.update(new_plans(system.sip, personnummer, 1))

    pages = every_page(system.sip, first, between=write_between_pages)
    visited = [plan_id for page in pages for plan_id in page]
    assert len(visited) == len(set(visited)), "an item was visited twice"
    assert set(visited) == existing, "an item was skipped, or one made meanwhile slipped in"
    assert first["total"] == 12


def test_consents_sort_and_search_by_date(system):
    personnummer = new_personnummer()
    patient = system.as_caller("patient", organization=None, patient=personnummer)
    for _ in range(3):
        assert patient.consent.post("/fhir/Consent", json=consent(personnummer)).status_code == 201
    asked = {"patient:identifier": personnummer}
    found = resources(search_by_post(system.consent, "Consent", **asked, _sort="-date"))
    stamps = [c["dateTime"] for c in found]
    assert len(stamps) == 3 and stamps == sorted(stamps, reverse=True)
    today = datetime.now(UTC).date()
    window = f"ge{(today - timedelta(days=1)).isoformat()}"
    assert search_by_post(system.consent, "Consent", **asked, date=window)["total"] == 3
    assert search_by_post(system.consent, "Consent", **asked, date="lt2000-01-01")["total"] == 0


def test_audit_events_page_in_order_each_once(system):
    personnummer = new_personnummer()
    (plan_id,) = new_plans(system.sip, personnummer, 1)
    for _ in range(4):
        assert system.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 200
    auditor = system.as_caller("auditor").sip
    asked = {"patient:identifier": personnummer, "_count": 2}
    first = search_by_post(auditor, "AuditEvent", **asked)
    assert first["total"] >= 5
    assert all(personnummer not in x["url"] for x in first["link"])
    pages = every_page(auditor, first)
    records = [record for page in pages for record in page]
    assert len(records) == len(set(records)) == first["total"]
    newest_first = search_by_post(auditor, "AuditEvent", **asked, _sort="-date")
    stamps = [r["recorded"] for r in resources(newest_first)]
    assert stamps == sorted(stamps, reverse=True)
    second = follow(auditor, link(first, "next"))
    assert ids_of(follow(auditor, link(second, "previous"))) == ids_of(first)
    uncounted = search_by_post(auditor, "AuditEvent", **asked, _total="none")
    assert "total" not in uncounted and ids_of(uncounted) == ids_of(first)
    assert ids_of(follow(auditor, link(uncounted, "next"))) == ids_of(second)
    by_get = auditor.get("/fhir/AuditEvent", params={"subtype": "read,create", "_count": 1})
    assert by_get.status_code == 200 and len(by_get.json()["entry"]) == 1


def test_provenance_pages(system):
    (plan_id,) = new_plans(system.sip, new_personnummer(), 1)
    for number in range(3):
        assert run(system.sip, plan_id, "record-need", text=f"behov {number}").status_code == 200
    first = follow(system.sip, f"/fhir/Provenance?target=CarePlan/{plan_id}&_count=2")
    assert first["total"] == 4
    pages = every_page(system.sip, first)
    assert sum(len(page) for page in pages) == 4


BAD_VALUES = [
    ("_sort", "garbage"),
    ("_sort", "date;DROP TABLE plan_index"),
    ("_sort", "-"),
    ("_count", "abc"),
    ("_elements", "*"),
    ("_elements", "status' OR 1=1--"),
    ("_summary", "text"),
    ("_total", "maybe"),
    ("_lastUpdated", "2026-13-45"),
    ("_lastUpdated", "xx2026-01-01"),
    ("_id", ""),
]
SEARCHES = [
    ("sip", "CarePlan"),
    ("consent", "Consent"),
    ("sip", "AuditEvent"),
    ("sip", "OperationDefinition"),  # takes no _id, _lastUpdated, _sort: refused by name too
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_values_are_400_naming_the_parameter(system, name, value):
    auditor = system.as_caller("auditor")
    for service, resource_type in SEARCHES:
        caller = auditor if resource_type == "AuditEvent" else system
        client = getattr(caller, service)
        response = client.get(f"/fhir/{resource_type}", params={name: value})
        assert response.status_code == 400, (resource_type, response.text)
        assert response.json()["issue"][0]["expression"] == [name], (resource_type, name)
    dates = system.sip.get("/fhir/CarePlan", params={"date": "2026-13-45"})
    assert dates.status_code == 400 and dates.json()["issue"][0]["expression"] == ["date"]


@pytest.mark.parametrize(("name", "value"), [("_sort", "date"), ("_elements", "*")])
def test_history_refuses_what_it_does_not_serve(system, name, value):
    response = system.sip.get("/fhir/CarePlan/_history", params={name: value})
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == [name]


def test_lenient_handling_leaves_the_ignored_parameter_out_of_the_self_link(system):
    strict = system.sip.get(
        "/fhir/CarePlan", params={"bogus": "1", "status": "active"},
        headers={"Prefer": "handling=strict"},
    )  # fmt: skip
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["expression"] == ["bogus"]
    lenient = system.sip.get(
        "/fhir/CarePlan", params={"bogus": "1", "status": "active", "_count": "1"},
        headers={"Prefer": "handling=lenient"},
    )  # fmt: skip
    assert lenient.status_code == 200, lenient.text
    self_link = link(lenient.json(), "self")
    assert "bogus" not in self_link and "status=active" in self_link


def test_history_refuses_unknown_parameters_unless_lenient(system):
    (plan_id,) = new_plans(system.sip, new_personnummer(), 1)
    path = f"/fhir/CarePlan/{plan_id}/_history"
    strict = system.sip.get(path, params={"bogus": "1"})
    assert strict.status_code == 400 and strict.json()["issue"][0]["expression"] == ["bogus"]
    lenient = system.sip.get(
        path, params={"bogus": "1", "_count": "1"}, headers={"Prefer": "handling=lenient"}
    )
    assert lenient.status_code == 200, lenient.text
    assert "bogus" not in link(lenient.json(), "self")
    counted = system.sip.get(path, params={"_total": "none", "_elements": "status"}).json()
    assert "total" not in counted
    assert all(subsetted(r) and set(r) <= {"resourceType", "id", "meta", "status"}
               for r in resources(counted))  # fmt: skip


HOSTILE = [
    "'; DROP TABLE access_log;--",
    "9999-12-31T23:59:59-14:00",
    "ge0001-01-01T00:00:00+14:00",
    "ge-1",
    "%",
    ",",
    ",,",
    "Patient/",
    "Patient/../CarePlan",
    "x" * 5000,
    "１９８００１０１",
    "eq2026-02-30",
    "2026-13-45",
]


def test_no_declared_parameter_answers_hostile_input_with_a_server_error(system):
    auditor = system.as_caller("auditor")
    for service in ("sip", "consent"):
        statement = getattr(system, service).get("/fhir/metadata").json()
        for resource in statement["rest"][0]["resource"]:
            resource_type = resource["type"]
            caller = auditor if resource_type == "AuditEvent" else system
            client = getattr(caller, service)
            names = [p["name"] for p in resource.get("searchParam", [])]
            names += ["_sort", "_elements", "_summary", "_total", "_count"] if names else []
            for name in names:
                for value in HOSTILE:
                    response = client.post(f"/fhir/{resource_type}/_search", data={name: value})
                    assert response.status_code < 500, (resource_type, name, value)
                    if response.status_code == 400:
                        expression = response.json()["issue"][0].get("expression")
                        assert expression, (resource_type, name, value, response.text)


def test_sorted_paging_holds_while_another_client_writes_during_every_page(system):
    """Writes committed while a page is being read (not only between pages): the snapshot is
    taken by event number, so a change that lands mid-page is either before it or after it."""
    personnummer = new_personnummer()
    existing = sorted(new_plans(system.sip, personnummer, 15))
    writer = system.as_caller("coordinator").sip
    stop = threading.Event()
    writes: list[int] = []

    def keep_writing() -> None:
        for number in range(200):  # bounded, and stopped when paging is done
            if stop.is_set():
                return
            plan_id = existing[number % len(existing)]
            writes.append(run(writer, plan_id, "record-need", text=f"b{number}").status_code)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        for sort in ("_lastUpdated", "-_lastUpdated"):
            first = search_by_post(
                system.sip, "CarePlan", **{"subject:identifier": personnummer},
                _count=3, _sort=sort,
            )  # fmt: skip
            visited = [i for page in every_page(system.sip, first) for i in page]
            assert sorted(visited) == existing, sort  # each exactly once
    finally:
        stop.set()
        thread.join(timeout=60)
    assert writes and set(writes) == {200}


def test_an_escaped_comma_belongs_to_the_value():
    assert values_of("draft,active") == ["draft", "active"]
    assert values_of(r"urn:example|a\,b,urn:example|c") == ["urn:example|a,b", "urn:example|c"]
