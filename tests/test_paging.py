"""Paging of searches and `_history` over real HTTP: `_count`, `_summary=count`, the `self`,
`next` and `previous` links with their opaque cursors, totals that count only what the caller
may see, and repeated parameters (AND) beside commas (OR)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.fhir_data import (
    MUNICIPALITY,
    OTHER_REGION,
    care_plan,
    consent,
    new_personnummer,
    run,
)


def new_plans(client: httpx.Client, personnummer: str, how_many: int, **kind: Any) -> set[str]:
    ids = set()
    for _ in range(how_many):
        created = client.post("/fhir/CarePlan", json=care_plan(personnummer, **kind))
        assert created.status_code == 201, created.text
        ids.add(created.json()["id"])
    return ids


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


def ids_of(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def search_by_post(client: httpx.Client, resource: str, **form: Any) -> dict[str, Any]:
    response = client.post(f"/fhir/{resource}/_search", data=form)
    assert response.status_code == 200, response.text
    return response.json()


def follow(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.json()


def every_page(client: httpx.Client, first: dict[str, Any], between=None) -> list[list[str]]:
    pages, bundle = [ids_of(first)], first
    while (url := link(bundle, "next")) is not None:
        if between:
            between()
        bundle = follow(client, url)
        pages.append(ids_of(bundle))
    return pages


def test_a_personnummer_search_pages_through_each_plan_once_without_the_number_in_a_link(
    system,
):
    personnummer = new_personnummer()
    created = new_plans(system.sip, personnummer, 31)
    first = search_by_post(system.sip, "CarePlan", **{"subject:identifier": personnummer}, _count=7)
    assert first["total"] == 31
    pages = every_page(system.sip, first)
    assert [len(page) for page in pages] == [7, 7, 7, 7, 3]
    visited = [plan_id for page in pages for plan_id in page]
    assert sorted(visited) == sorted(created)  # each exactly once
    for relation in ("self", "next"):
        url = link(first, relation)
        assert url.startswith("http") and personnummer not in url, url
        assert personnummer[-4:] not in url  # not even its last digits, in any spelling
    # previous leads back to the page before
    second = follow(system.sip, link(first, "next"))
    assert ids_of(follow(system.sip, link(second, "previous"))) == pages[0]
    assert ids_of(follow(system.sip, link(second, "self"))) == pages[1]


def test_plans_created_while_paging_cause_no_repeat_and_no_skip(system):
    personnummer = new_personnummer()
    existing = new_plans(system.sip, personnummer, 21)
    first = search_by_post(system.sip, "CarePlan", **{"subject:identifier": personnummer}, _count=5)
    added: set[str] = set()

    def create_two() -> None:
        added.update(new_plans(system.sip, personnummer, 2))
        # A change moves a plan's lastUpdated, never its place in the order.
        changed = sorted(existing)[len(added) % len(existing)]
        assert run(system.sip, changed, "record-need", text="ett behov").status_code == 200

    visited = [i for page in every_page(system.sip, first, between=create_two) for i in page]
    assert len(visited) == len(set(visited)), "an item was visited twice"
    assert existing <= set(visited), "an item that existed at the start was skipped"
    assert set(visited) <= existing | added


def test_an_outsider_counts_nothing_and_a_participant_only_its_own(system):
    personnummer = new_personnummer()
    regions = new_plans(system.sip, personnummer, 4)
    municipality = system.as_caller("coordinator", organization=MUNICIPALITY)
    its_own = new_plans(municipality.sip, personnummer, 3, organization=MUNICIPALITY)
    outsider = system.as_caller("coordinator", organization=OTHER_REGION)
    subject = {"subject:identifier": personnummer}

    nothing = search_by_post(outsider.sip, "CarePlan", **subject, _count=2)
    assert nothing["total"] == 0
    assert nothing.get("entry", []) == []
    assert link(nothing, "next") is None

    seen = search_by_post(municipality.sip, "CarePlan", **subject, _count=2)
    assert seen["total"] == 3
    assert {i for page in every_page(municipality.sip, seen) for i in page} == its_own
    region = search_by_post(system.sip, "CarePlan", **subject, _count=2)
    assert region["total"] == 4  # the pages are filled with visible plans only
    assert [len(page) for page in every_page(system.sip, region)] == [2, 2]
    assert {i for page in every_page(system.sip, region) for i in page} == regions


@pytest.mark.parametrize("ask", [{"_summary": "count"}, {"_count": "0"}])
def test_a_count_only_search_answers_the_total_without_entries(system, ask):
    personnummer = new_personnummer()
    new_plans(system.sip, personnummer, 3)
    bundle = search_by_post(system.sip, "CarePlan", **{"subject:identifier": personnummer}, **ask)
    assert bundle["total"] == 3
    assert "entry" not in bundle
    assert link(bundle, "next") is None


@pytest.mark.parametrize("count", ["abc", "-1", "1001", ""])
def test_a_count_that_is_no_count_is_400_naming_it(system, count):
    for client, path in (
        (system.sip, "/fhir/CarePlan"),
        (system.consent, "/fhir/Consent"),
        (system.sip, "/fhir/CarePlan/_history"),
        (system.sip, "/fhir/Goal/_history"),
    ):
        response = client.get(path, params={"_count": count})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["issue"][0]["expression"] == ["_count"]


def test_a_tampered_or_foreign_cursor_is_400(system):
    personnummer = new_personnummer()
    new_plans(system.sip, personnummer, 3)
    first = search_by_post(system.sip, "CarePlan", **{"subject:identifier": personnummer}, _count=1)
    cursor = parse_qs(urlsplit(link(first, "next")).query)["_cursor"][0]
    changed = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    for path, token in (
        ("/fhir/CarePlan", changed),
        ("/fhir/CarePlan", "not-a-cursor"),
        ("/fhir/Consent", cursor),  # a CarePlan search's cursor does not continue another
        ("/fhir/CarePlan/_history", cursor),
    ):
        client = system.consent if path.startswith("/fhir/Consent") else system.sip
        response = client.get(path, params={"_cursor": token})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["issue"][0]["expression"] == ["_cursor"]
    # A cursor continues its own search only: nothing may be added to it.
    response = system.sip.get("/fhir/CarePlan", params={"_cursor": cursor, "status": "active"})
    assert response.status_code == 400


def test_type_history_pages_beyond_a_hundred_with_an_honest_total(fresh_system):
    system = fresh_system
    created = new_plans(system.sip, new_personnummer(), 104)
    # A type's history counts only when asked (docs/decisions/0009).
    first = follow(system.sip, "/fhir/CarePlan/_history?_total=accurate")
    assert first["total"] == 104
    assert len(first["entry"]) == 100
    pages = [[e["resource"]["id"] for e in first["entry"]]]
    rest = follow(system.sip, link(first, "next"))
    pages.append([e["resource"]["id"] for e in rest["entry"]])
    assert link(rest, "next") is None
    assert sorted(i for page in pages for i in page) == sorted(created)
    counted = follow(system.sip, "/fhir/CarePlan/_history?_summary=count")
    assert counted["total"] == 104 and "entry" not in counted
    outsider = system.as_caller("coordinator", organization=OTHER_REGION)
    assert follow(outsider.sip, "/fhir/CarePlan/_history?_total=accurate")["total"] == 0


def test_instance_history_pages_newest_first(system):
    (plan_id,) = new_plans(system.sip, new_personnummer(), 1)
    for number in range(4):
        assert run(system.sip, plan_id, "record-need", text=f"behov {number}").status_code == 200
    first = follow(system.sip, f"/fhir/CarePlan/{plan_id}/_history?_count=2")
    assert first["total"] == 5
    versions = []
    bundle = first
    while True:
        versions += [e["resource"]["meta"]["versionId"] for e in bundle["entry"]]
        if (url := link(bundle, "next")) is None:
            break
        bundle = follow(system.sip, url)
    assert versions == ["5", "4", "3", "2", "1"]


def test_status_takes_commas_as_or_and_repeats_as_and(system):
    personnummer = new_personnummer()
    new_plans(system.sip, personnummer, 2)
    subject = ("subject:identifier", personnummer)

    def post(*pairs: tuple[str, str]) -> httpx.Response:
        # A repeated form field, as httpx's `data` (a dict) cannot send it.
        return system.sip.post(
            "/fhir/CarePlan/_search",
            content=urlencode(pairs),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def total(*pairs: tuple[str, str]) -> int:
        response = post(subject, *pairs)
        assert response.status_code == 200, response.text
        return response.json()["total"]

    assert total(("status", "draft,active")) == 2
    assert total(("status", "active,completed")) == 0
    assert total(("status", "draft"), ("status", "active")) == 0  # no plan is both
    assert total(("status", "draft"), ("status", "draft,active")) == 2
    refused = post(subject, ("status", "drafty"))
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["expression"] == ["status"]
    # Every search parameter repeats as AND (R4): no plan is two persons' at once.
    assert total(subject) == 2
    assert total(("subject:identifier", new_personnummer())) == 0
    twice = post(("_count", "1"), ("_count", "2"))  # a result parameter is given once
    assert twice.status_code == 400
    assert twice.json()["issue"][0]["expression"] == ["_count"]
    other = system.sip.get("/fhir/CarePlan", params={"_summary": "text"})
    assert other.status_code == 400
    assert other.json()["issue"][0]["expression"] == ["_summary"]


def test_consents_page_too_and_their_links_hold_no_personnummer(system):
    personnummer = new_personnummer()
    patient = system.as_caller("patient", organization=None, patient=personnummer)
    created = set()
    for _ in range(5):
        response = patient.consent.post("/fhir/Consent", json=consent(personnummer))
        assert response.status_code == 201, response.text
        created.add(response.json()["id"])
    first = search_by_post(
        system.consent, "Consent", **{"patient:identifier": personnummer}, _count=2
    )
    assert first["total"] == 5
    assert all(personnummer not in x["url"] for x in first["link"])
    pages = every_page(system.consent, first)
    assert sorted(i for page in pages for i in page) == sorted(created)
    plain = system.consent.get("/fhir/Consent", params={"status": "active", "_count": 1})
    assert "status=active" in link(plain.json(), "self")  # a query without a person, in full
