"""Type-level `_history` is paged from the event log by position
(docs/decisions/0009-paged-type-history.md): each page lists the versions the caller may see,
newest first by commit, each exactly once however the store changes between pages, the
views (Goal, CareTeam) too; a page reconstructs only what it shows, and its total, given
only when asked (`_total=accurate`, a count only), is the number of versions the caller may
see."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from services.common import application as application_module
from tests.fhir_data import FHIR_JSON, MUNICIPALITY, care_plan, new_personnummer, run
from tests.test_access_log_commits import seeded_plans
from tests.test_paging import follow, link, new_plans
from tests.test_time_travel import instant


def versions_of(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (entry["resource"]["id"], entry["resource"]["meta"]["versionId"])
        for entry in bundle.get("entry", [])
    ]


def paged(client: httpx.Client, url: str, between=None) -> tuple[list[dict], list[tuple]]:
    """(every page's bundle, every version listed, in order), following `next` links."""
    bundles = [follow(client, url)]
    while (after := link(bundles[-1], "next")) is not None:
        if between:
            between()
        bundles.append(follow(client, after))
    return bundles, [version for bundle in bundles for version in versions_of(bundle)]


def instance_versions(client: httpx.Client, plan_ids: set[str]) -> set[tuple[str, str]]:
    """Every version of the plans, as their instance histories list them."""
    every = set()
    for plan_id in plan_ids:
        every |= set(versions_of(follow(client, f"/fhir/CarePlan/{plan_id}/_history")))
    return every


def test_pages_list_each_version_the_caller_may_see_once_newest_first(fresh_system):
    system = fresh_system
    regions = new_plans(system.sip, new_personnummer(), 4)
    for number, plan_id in enumerate(sorted(regions)):
        for _ in range(number):
            assert run(system.sip, plan_id, "record-need", text="behov").status_code == 200
    municipality = system.as_caller("coordinator", organization=MUNICIPALITY)
    its_own = new_plans(municipality.sip, new_personnummer(), 3, organization=MUNICIPALITY)
    expected = instance_versions(system.sip, regions)
    assert len(expected) == 4 + 0 + 1 + 2 + 3

    bundles, listed = paged(system.sip, "/fhir/CarePlan/_history?_count=3&_total=none")
    assert [len(versions_of(b)) for b in bundles] == [3, 3, 3, 1]
    assert len(listed) == len(set(listed)) and set(listed) == expected
    updated = [e["resource"]["meta"]["lastUpdated"] for b in bundles for e in b["entry"]]
    assert updated == sorted(updated, reverse=True)  # newest first
    assert all("total" not in bundle for bundle in bundles)
    # Each version of a plan is listed after (older than) the one that followed it.
    for plan_id in regions:
        numbers = [int(version) for id_, version in listed if id_ == plan_id]
        assert numbers == sorted(numbers, reverse=True)

    counted = follow(system.sip, "/fhir/CarePlan/_history?_count=3&_total=accurate")
    assert counted["total"] == len(expected)
    assert versions_of(counted) == listed[:3]
    second = bundles[1]
    assert versions_of(follow(system.sip, link(second, "previous"))) == listed[:3]
    assert versions_of(follow(system.sip, link(second, "self"))) == listed[3:6]
    assert link(bundles[0], "previous") is None
    last = bundles[-1]
    assert versions_of(follow(system.sip, link(last, "previous"))) == listed[6:9]

    # The municipality pages through its own plans only, and counts only them.
    _, theirs = paged(municipality.sip, "/fhir/CarePlan/_history?_count=2")
    assert {plan_id for plan_id, _ in theirs} == its_own
    assert follow(municipality.sip, "/fhir/CarePlan/_history?_summary=count")["total"] == 3


def test_writes_between_pages_neither_repeat_nor_skip_a_version(fresh_system):
    system = fresh_system
    personnummer = new_personnummer()
    plans = sorted(new_plans(system.sip, personnummer, 6))
    existing = instance_versions(system.sip, set(plans))
    shown_so_far: list[str] = []

    def write() -> None:
        # A plan already shown and one not yet shown gain a version; a new plan appears.
        for plan_id in (plans[-1], plans[0]):
            assert run(system.sip, plan_id, "record-need", text="nytt").status_code == 200
        shown_so_far.append(new_plans(system.sip, personnummer, 1).pop())

    _, listed = paged(system.sip, "/fhir/CarePlan/_history?_count=2&_total=none", write)
    assert len(listed) == len(set(listed)), "a version was listed twice"
    assert existing <= set(listed), "a version that existed at the first page was skipped"
    # Nothing committed after the first page lands behind its cursor.
    assert set(listed) == existing


def test_since_pages_only_the_versions_from_then(fresh_system):
    system = fresh_system
    before = new_plans(system.sip, new_personnummer(), 3)
    middle = instant()
    after = new_plans(system.sip, new_personnummer(), 2)
    assert run(system.sip, sorted(before)[0], "record-need", text="sen").status_code == 200
    url = f"/fhir/CarePlan/_history?_count=1&_total=accurate&_since={middle.replace('+', '%2B')}"
    bundles, listed = paged(system.sip, url)
    assert set(listed) == {(plan_id, "1") for plan_id in after} | {(sorted(before)[0], "2")}
    assert bundles[0]["total"] == 3 and len(bundles) == 3


def test_views_page_as_their_whole_history_lists_them(fresh_system):
    system = fresh_system
    for _ in range(2):
        plan_id = system.sip.post(
            "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
        ).json()["id"]
        for number in range(3):
            assert run(system.sip, plan_id, "record-need", text=f"behov {number}").is_success
            assert run(
                system.sip, plan_id, "set-goal", text=f"mål {number}", need=f"need-{number + 1}"
            ).is_success
        assert run(
            system.sip, plan_id, "revise-goal", goal="goal-1", text="ändrat", reason="bättre"
        ).is_success
    for view in ("Goal", "CareTeam"):
        whole = follow(system.sip, f"/fhir/{view}/_history?_count=1000&_total=accurate")
        bundles, listed = paged(system.sip, f"/fhir/{view}/_history?_count=2&_total=accurate")
        assert listed == versions_of(whole)
        assert all(bundle["total"] == whole["total"] == len(listed) for bundle in bundles)
        methods = [entry["request"]["method"] for entry in whole["entry"]]
        assert methods.count("POST") == len({resource_id for resource_id, _ in listed})
    goals = versions_of(follow(system.sip, "/fhir/Goal/_history?_count=1000"))
    assert len(goals) == 2 * (3 + 1)  # three set, one revised, in each plan


def test_a_page_reads_only_the_plans_it_shows(fresh_system):
    seeded = seeded_plans(fresh_system.backend, 40)
    plans = fresh_system.sip_app.state.plans
    loaded: list[Any] = []
    # Every typed load (a plan's, a stay's) goes through aggregate_of.
    original = plans.aggregate_of

    def aggregate_of(cls: Any, resource_type: str, aggregate_id: Any, version: Any = None) -> Any:
        loaded.append((str(aggregate_id), version))
        return original(cls, resource_type, aggregate_id, version)

    plans.aggregate_of = aggregate_of
    try:
        # No total asked: the default page counts nothing (docs/decisions/0009).
        pages = [follow(fresh_system.sip, "/fhir/CarePlan/_history?_count=2")]
        reads = [set(loaded)]
        loaded.clear()
        pages.append(follow(fresh_system.sip, link(pages[0], "next")))
        reads.append(set(loaded))
    finally:
        del plans.aggregate_of
    for page, read in zip(pages, reads, strict=True):
        shown = set(versions_of(page))
        assert len(shown) == 2 and {plan_id for plan_id, _ in shown} <= set(seeded)
        # Only the versions shown are reconstructed...
        assert {(plan_id, str(v)) for plan_id, v in read if v is not None} == shown
        # ...and disclosure is asked of those plans, the one that tells whether a next page
        # exists, and (from a cursor) the one that tells whether a previous page does.
        current = {plan_id for plan_id, v in read if v is None}
        assert len(current) <= 4, f"{len(current)} plans read for a page of two"


def test_instance_history_copies_only_its_page_and_each_version_reads_as_vread(system, monkeypatch):
    (plan_id,) = new_plans(system.sip, new_personnummer(), 1)
    for number in range(9):
        assert run(system.sip, plan_id, "record-need", text=f"behov {number}").is_success
    copied: list[int] = []

    def deepcopy(aggregate: Any) -> Any:
        copied.append(aggregate.version)
        return copy.deepcopy(aggregate)

    # Every version the application reconstructs for a caller is a copy of its own.
    monkeypatch.setattr(application_module, "deepcopy", deepcopy)
    first = follow(system.sip, f"/fhir/CarePlan/{plan_id}/_history?_count=3")
    assert versions_of(first) == [(plan_id, "10"), (plan_id, "9"), (plan_id, "8")]
    assert sorted(copied) == [8, 9, 10], "only the page's versions are reconstructed"
    monkeypatch.undo()
    bundles, listed = paged(system.sip, f"/fhir/CarePlan/{plan_id}/_history?_count=3")
    assert [int(version) for _, version in listed] == list(range(10, 0, -1))
    for bundle in bundles:
        for entry in bundle["entry"]:
            version = entry["resource"]["meta"]["versionId"]
            vread = follow(system.sip, f"/fhir/CarePlan/{plan_id}/_history/{version}")
            assert entry["resource"] == vread


def test_the_total_is_given_only_when_asked(fresh_system):
    system = fresh_system
    plans = new_plans(system.sip, new_personnummer(), 3)
    assert run(system.sip, sorted(plans)[0], "record-need", text="behov").status_code == 200
    plain = follow(system.sip, "/fhir/CarePlan/_history?_count=2")
    assert "total" not in plain and len(plain["entry"]) == 2
    assert "total" not in follow(system.sip, "/fhir/Goal/_history")
    for asked in ("_count=2&_total=accurate", "_count=2&_total=estimate",
                  "_count=2&_totalMethod=count", "_summary=count", "_count=0"):  # fmt: skip
        bundle = follow(system.sip, f"/fhir/CarePlan/_history?{asked}")
        assert bundle["total"] == 4, asked
    # The next page keeps what was asked.
    first = follow(system.sip, "/fhir/CarePlan/_history?_count=2&_total=accurate")
    assert follow(system.sip, link(first, "next"))["total"] == 4
    assert "total" not in follow(system.sip, link(plain, "next"))
    # A search keeps its total without being asked.
    assert "total" in follow(system.sip, "/fhir/CarePlan?_count=1")


def test_a_views_page_replays_each_plan_version_once(fresh_system):
    system = fresh_system
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    ).json()["id"]
    for number in range(4):
        assert run(system.sip, plan_id, "record-need", text=f"behov {number}").is_success
        assert run(
            system.sip, plan_id, "set-goal", text=f"mål {number}", need=f"need-{number + 1}"
        ).is_success
    plans = system.sip_app.state.plans
    replayed: list[Any] = []
    original = plans.aggregate_of  # every typed load, a version's replay too

    def aggregate_of(cls: Any, resource_type: str, aggregate_id: Any, version: Any = None) -> Any:
        if version is not None:
            replayed.append(version)
        return original(cls, resource_type, aggregate_id, version)

    plans.aggregate_of = aggregate_of
    try:
        page = follow(system.sip, "/fhir/Goal/_history?_count=3")
    finally:
        del plans.aggregate_of
    assert len(versions_of(page)) == 3
    # Each plan version met is replayed once (as the one before the next event's): a
    # version and the one before it are not both replayed from the start.
    assert replayed and len(replayed) == len(set(replayed)), replayed
