"""One request, one commit: the access records a search or a type-level history produces
for many persons are saved in one transaction, one record per person with what was shown
of them, and a read whose records cannot be written is not answered (fail closed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.access_log import AccessRecord
from services.common.persistence import storage_for
from services.sip.application import SipPlans
from tests.fhir_data import REGION, new_personnummer
from tests.test_poisoned_log import start_plan

PERSONS = 60
RECORD_TOPIC_PREFIX = "services.common.access_log:AccessRecord"


def seeded_plans(backend: Any, persons: int) -> dict[str, str]:
    """One plan for each of `persons` new persons, saved beside the running service as a
    second replica would; {plan id: personnummer}."""
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    try:
        seeded = {}
        for _ in range(persons):
            personnummer = new_personnummer()
            seeded[str(start_plan(plans, personnummer).id)] = personnummer
        return seeded
    finally:
        plans.close()


@contextmanager
def counted_inserts(plans: Any, failing: bool = False) -> Iterator[list[list[Any]]]:
    """The recorder's inserts that hold access records (each one transaction), as lists of
    the stored events; with `failing`, each such insert raises as a full disk would."""
    recorder = plans.recorder
    original = recorder.insert_events
    calls: list[list[Any]] = []

    def insert_events(stored_events: list[Any], **kwargs: Any) -> Any:
        records = [e for e in stored_events if e.topic.startswith(RECORD_TOPIC_PREFIX)]
        if records:
            calls.append(list(stored_events))
            if failing:
                raise OSError("disk full")
        return original(stored_events, **kwargs)

    recorder.insert_events = insert_events
    try:
        yield calls
    finally:
        del recorder.insert_events


def logged(plans: Any, inserted: list[Any]) -> list[AccessRecord]:
    return [
        plans.repository.get(event.originator_id)
        for event in inserted
        if event.topic.startswith(RECORD_TOPIC_PREFIX)
    ]


@pytest.mark.parametrize(
    ("path", "interaction"),
    [
        ("/fhir/CarePlan/_history?_count=1000", "history-type"),
        ("/fhir/CarePlan?_count=1000", "search-type"),
    ],
)
def test_a_read_showing_many_persons_is_one_commit_with_one_record_each(
    fresh_system, path, interaction
):
    seeded = seeded_plans(fresh_system.backend, PERSONS)
    plans = fresh_system.sip_app.state.plans
    with counted_inserts(plans) as inserts:
        response = fresh_system.sip.get(path)
    assert response.status_code == 200, response.text
    shown = {entry["resource"]["id"] for entry in response.json()["entry"]}
    assert shown == set(seeded)
    assert len(inserts) == 1, f"{len(inserts)} commits for one request"
    records = logged(plans, inserts[0])
    assert len(records) == PERSONS
    by_person = {record.patient["value"]: record for record in records}
    assert set(by_person) == set(seeded.values())
    for plan_id, personnummer in seeded.items():
        record = by_person[personnummer]
        assert record.patient == {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
        assert record.entity == f"CarePlan/{plan_id}"
        assert record.interaction == interaction and record.action == "R"
        assert record.outcome == "0" and record.custodian == REGION
        assert record.actor["organization"] == REGION


@pytest.mark.parametrize(
    "path", ["/fhir/CarePlan/_history?_count=1000", "/fhir/CarePlan?_count=1000", "{plan}"]
)
def test_a_read_whose_records_cannot_be_written_fails_closed(fresh_system, path):
    seeded = seeded_plans(fresh_system.backend, 3)
    path = path.format(plan=f"/fhir/CarePlan/{next(iter(seeded))}")
    plans = fresh_system.sip_app.state.plans
    with counted_inserts(plans, failing=True) as inserts:
        response = fresh_system.sip.get(path)
    assert inserts, "the read tried to log"
    assert response.status_code == 503, response.text
    body = response.text
    assert body.count("access log cannot be written") == 1
    assert not any(plan_id in body or personnummer in body
                   for plan_id, personnummer in seeded.items())  # fmt: skip
