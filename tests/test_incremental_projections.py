"""A read model catches up in one step per event, not a replay of the aggregate per event
(issue 15: catching up was quadratic in a plan's versions), and its rows stay those of each
aggregate's newest event however the events fall into batches, replicas or rebuilds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.common.persistence import read_model_engine, storage_for
from services.sip.application import SipPlans
from services.sip.projections import PlanIndex, plan_consents, plan_index, plan_organizations
from tests.fhir_data import MUNICIPALITY, new_personnummer
from tests.test_poisoned_log import BY, NOW, start_plan

TABLES = (plan_index, plan_organizations, plan_consents)


@pytest.fixture
def store(backend: Any) -> Iterator[tuple[SipPlans, Engine]]:
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    engine = read_model_engine(storage)
    try:
        yield plans, engine
    finally:
        engine.dispose()
        plans.close()


class EventsRead:
    """Counts the events read back from the store while `during` runs: what a projection
    reads to rebuild aggregates (the events it applies come from the notification log)."""

    def __init__(self, plans: SipPlans, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._counting = False
        original = plans.events.get

        def counting(*args: Any, **kwargs: Any) -> Iterator[Any]:
            for event in original(*args, **kwargs):
                self.count += self._counting
                yield event

        monkeypatch.setattr(plans.events, "get", counting)

    def during(self, call: Any) -> Any:
        self._counting = True
        try:
            return call()
        finally:
            self._counting = False


def needs(plans: SipPlans, plan_id: Any, count: int, first: int = 0) -> None:
    for number in range(first, first + count):
        plans.change(
            plan_id, lambda p, n=number: p.record_need(text=f"n{n}", wishes=None, at=NOW, by=BY)
        )


def rows(engine: Engine) -> list[list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return [sorted(tuple(r) for r in connection.execute(select(t))) for t in TABLES]


def test_catching_up_applies_each_event_once_instead_of_replaying_the_plan(store, monkeypatch):
    plans, engine = store
    plan = start_plan(plans, new_personnummer())
    needs(plans, plan.id, 60)
    index = PlanIndex(plans, engine)
    read = EventsRead(plans, monkeypatch)
    read.during(index.catch_up)  # 61 events of one plan: a replay per event read 1,891
    assert read.count == 0
    for number in range(20):  # a query after each write catches up one event
        needs(plans, plan.id, 1, first=100 + number)
        read.during(index.catch_up)
    assert read.count == 0
    with engine.connect() as connection:
        assert connection.execute(select(plan_index.c.version)).scalar_one() == 81


def test_a_replica_catching_up_after_another_reads_only_the_events_it_missed(store, monkeypatch):
    plans, engine = store
    plan = start_plan(plans, new_personnummer())
    needs(plans, plan.id, 5)
    one, other = PlanIndex(plans, engine), PlanIndex(plans, engine)
    one.catch_up()
    needs(plans, plan.id, 10, first=10)
    other.catch_up()  # from the shared position: it rebuilds the plan once, at version 6
    read = EventsRead(plans, monkeypatch)
    needs(plans, plan.id, 1, first=30)
    read.during(one.catch_up)  # it last saw version 6; the other applied 7..16
    assert read.count == 10
    with engine.connect() as connection:
        assert connection.execute(select(plan_index.c.version)).scalar_one() == 17


def test_rows_are_each_plans_newest_however_batches_replicas_and_rebuilds_fall(store):
    plans, engine = store
    replicas = [PlanIndex(plans, engine), PlanIndex(plans, engine)]
    for replica in replicas:
        replica.batch_size = 4  # a plan's events spread over several batches, and share them
    started = [start_plan(plans, new_personnummer()) for _ in range(3)]
    for round_number in range(6):
        for plan in started:
            needs(plans, plan.id, 1, first=round_number)
        if round_number == 2:
            plans.change(
                started[0].id,
                lambda p: p.invite_organization(
                    hsa_id=MUNICIPALITY, kind="municipality", name=None, at=NOW, by=BY
                ),
            )
        replicas[round_number % 2].catch_up()
    replicas[0].catch_up()
    live = rows(engine)
    assert sorted(row[plan_index.c.keys().index("version")] for row in live[0]) == [7, 7, 8]
    assert (str(started[0].id), MUNICIPALITY, "member") in live[1]
    replicas[1].rebuild()  # its kept plans are ahead of the events it applies again
    assert rows(engine) == live
    replicas[1].batch_size = 500
    replicas[1].rebuild()  # every plan created and changed in one batch: one insert each
    assert rows(engine) == live
