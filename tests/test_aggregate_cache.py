"""Replicas keep recently used aggregates in memory (services/common/persistence.py,
AGGREGATE_CACHE) and must still never act on a stale one: each read brings its copy up to
date with what any replica stored, and a write on a copy that went stale before it was saved
is refused by the event store, leaving every replica's copy as stored."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from services.common.domain import VersionMismatch
from services.common.persistence import storage_for
from services.sip.application import SipPlans
from tests.conftest import running_system
from tests.fhir_data import FHIR_JSON, care_plan, new_personnummer, parameters
from tests.test_poisoned_log import BY, NOW, start_plan


@pytest.fixture
def replicas(backend: Any) -> Iterator[tuple[SipPlans, SipPlans]]:
    """Two applications on one database, as two replicas of the SIP service run them."""
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    pair = (SipPlans(env=storage.event_store_env), SipPlans(env=storage.event_store_env))
    try:
        yield pair
    finally:
        for plans in pair:
            plans.close()


def need(text: str) -> Any:
    return lambda plan: plan.record_need(text=text, wishes=None, at=NOW, by=BY)


def texts(plan: Any) -> list[str]:
    return sorted(need.text for need in plan.needs.values())


def test_replicas_writing_one_plan_in_turn_each_build_on_the_others_writes(replicas):
    one = replicas[0]
    assert one.repository.cache is not None and one.repository.fastforward
    plan = start_plan(one, new_personnummer())
    for number in range(8):
        writer = replicas[number % 2]
        changed, _ = writer.change(plan.id, need(f"need {number}"), expected_version=number + 1)
        assert changed.version == number + 2
    for plans in replicas:
        current = plans.aggregate(plan.id)
        assert current.version == 9
        assert texts(current) == [f"need {number}" for number in range(8)]


def test_a_write_on_a_copy_another_replica_made_stale_is_refused(replicas):
    one, other = replicas
    plan = start_plan(one, new_personnummer())
    one.change(plan.id, need("first"))
    stale = one.aggregate(plan.id)  # version 2, kept in one's cache
    other.change(plan.id, need("the other's"))
    # The read before a write (If-Match) sees the other's version, not the kept one.
    with pytest.raises(VersionMismatch):
        one.change(plan.id, need("on version 2"), expected_version=2)
    # A copy read before the other's write and saved after it: the store refuses it.
    stale.record_need(text="lost update", wishes=None, at=NOW, by=BY)
    with pytest.raises(IntegrityError):
        one.save(stale)
    for plans in replicas:
        current = plans.aggregate(plan.id)
        assert current.version == 3
        assert texts(current) == ["first", "the other's"]


def test_a_refused_command_leaves_the_kept_aggregate_as_stored(replicas):
    one, _ = replicas
    plan = start_plan(one, new_personnummer())

    def refused(plan: Any) -> None:
        plan.record_need(text="not saved", wishes=None, at=NOW, by=BY)
        raise VersionMismatch(plan.version)

    with pytest.raises(VersionMismatch):
        one.change(plan.id, refused)
    assert one.aggregate(plan.id).version == 1
    assert texts(one.aggregate(plan.id)) == []


def test_reads_of_a_plan_another_replica_is_writing_never_copy_it_half_changed(replicas):
    """Threads of one replica reading a plan (each read brings the kept copy up to date)
    while another replica writes it: every copy is whole (its version counts its needs)."""
    one, other = replicas
    plan = start_plan(one, new_personnummer())
    for number in range(150):  # a plan large enough that copying it takes a while
        other.change(plan.id, need(f"earlier {number}"))
    done, problems = threading.Event(), []

    def read() -> None:
        while not done.is_set():
            try:
                copy = one.aggregate(plan.id)
            except Exception as error:  # e.g. "dictionary changed size during iteration"
                problems.append(repr(error))
                continue
            if copy.version != 1 + len(copy.needs):
                problems.append(f"version {copy.version} with {len(copy.needs)} needs")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads change hands often, as on a loaded server
    readers = [threading.Thread(target=read) for _ in range(4)]
    try:
        for reader in readers:
            reader.start()
        for number in range(40):
            other.change(plan.id, need(f"later {number}"))
    finally:
        done.set()
        for reader in readers:
            reader.join()
        sys.setswitchinterval(interval)
    assert problems == []


def test_two_running_replicas_answer_from_what_either_stored(backend):
    """Over HTTP, with the access check's read before each write: two SIP services (and
    consent services) on one database, a coordinator's writes sent to each in turn."""
    with running_system(backend) as first, running_system(backend) as second:
        clients = (first.sip, second.sip)
        created = first.sip.post(
            "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
        )
        assert created.status_code == 201, created.text
        plan_id = created.json()["id"]
        etag = created.headers["ETag"]
        for number in range(6):
            client = clients[number % 2]
            assert client.get(f"/fhir/CarePlan/{plan_id}").headers["ETag"] == etag
            written = client.post(
                f"/fhir/CarePlan/{plan_id}/$record-need",
                json=parameters(text=f"need {number}"),
                headers={**FHIR_JSON, "If-Match": etag},
            )
            assert written.status_code == 200, written.text
            stale = clients[(number + 1) % 2].post(
                f"/fhir/CarePlan/{plan_id}/$record-need",
                json=parameters(text="stale"),
                headers={**FHIR_JSON, "If-Match": etag},
            )
            assert stale.status_code == 412, stale.text
            etag = clients[(number + 1) % 2].get(f"/fhir/CarePlan/{plan_id}").headers["ETag"]
            assert etag == f'W/"{number + 2}"'
        shown = [client.get(f"/fhir/CarePlan/{plan_id}").text for client in clients]
        assert shown[0] == shown[1] and "stale" not in shown[0]
        assert all(f"need {number}" in shown[0] for number in range(6))
