"""The events a process just wrote are read back (the read models' catch-up after the write)
without opening their sealed fields again (issue 16), and only while opening would give the
same: never after an erasure, never for a write that was rolled back."""

import gc
from datetime import UTC, datetime

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from services.common.access_log import WriteContext, writing
from services.common.access_log_views import AccessLogIndex
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.envelope import Erased
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.master_key import MasterKey, MasterKeys
from services.sip.application import SipPlans
from tests.conftest import Backend, migrated
from tests.fhir_data import new_personnummer, started_by_region

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
BY = {"subject": "anna", "role": "coordinator", "organization": "SE2321000032-R1", "unit": None}
NEED = "vill kunna bo kvar hemma"


class CountedKeys(PersonalDataKeys):
    """A key store counting the sealed values it opens, and naming their fields."""

    opened = 0

    def open_bytes(self, sealed, context):
        self.opened += 1
        self.fields.append(context.split(b"\x00")[-1].decode())
        return super().open_bytes(sealed, context)

    @property
    def fields(self):
        return self.__dict__.setdefault("_fields", [])


@pytest.fixture
def store(tmp_path):
    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage = storage_for("sip", None, backend.data_dir)
    engine = read_model_engine(storage)
    yield storage, engine, MasterKeys(MasterKey.generate())
    engine.dispose()


def write_plan(app, personnummer):
    plan_id = app.start(
        **started_by_region(personnummer, at=NOW, by=BY, region="SE2321000032-R1")
    ).id
    app.change(plan_id, lambda p: p.record_need(text=NEED, wishes=None, at=NOW, by=BY))
    return plan_id


def read_back(app, plan_id):
    """The plan's events as the read models decode them, from the stored events."""
    return [app.mapper.to_domain_event(stored) for stored in app.recorder.select_events(plan_id)]


def test_a_just_written_event_is_read_back_without_opening_and_as_written(store):
    storage, engine, master = store
    keys = CountedKeys(engine, master)
    keys.forget_erased()  # the first look, as a running service's read models made it
    app = SipPlans(env=storage.event_store_env, personal_data=keys)
    personnummer = new_personnummer()
    plan_id = write_plan(app, personnummer)
    keys.opened = 0
    started, need = read_back(app, plan_id)
    assert keys.opened == 0
    assert started.subject == {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
    assert need.text == NEED
    # Another process, which did not write them, opens them to the same values.
    other_keys = CountedKeys(engine, master)
    other = SipPlans(env=storage.event_store_env, personal_data=other_keys)
    assert read_back(other, plan_id) == [started, need]
    assert other_keys.opened >= 2
    app.close()
    other.close()


def test_the_remembered_fields_are_left_out_of_what_the_garbage_collector_walks(store):
    """Thousands are kept, each written once and evicted later: tracked, each would add to every
    full collection's walk and bring the next one sooner (issue 16)."""
    storage, engine, master = store
    app = SipPlans(env=storage.event_store_env, personal_data=PersonalDataKeys(engine, master))
    write_plan(app, new_personnummer())
    assert app.mapper._just_written  # the plan's events, sealed
    gc.collect()  # CPython untracks an exact tuple of atoms when it is first collected
    tracked = [
        part
        for event, remembered in app.mapper._just_written.items()
        for part in (event, remembered)
        if gc.is_tracked(part)
    ]
    assert tracked == []
    app.close()


def test_after_an_erasure_is_noticed_the_remembered_fields_are_not_served(store):
    storage, engine, master = store
    keys = CountedKeys(engine, master)
    keys.forget_erased()
    elsewhere = PersonalDataKeys(engine, master)  # another replica's key store
    app = SipPlans(env=storage.event_store_env, personal_data=keys)
    personnummer = new_personnummer()
    plan_id = write_plan(app, personnummer)
    elsewhere.erase(PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer), rule="test", at=NOW)
    assert keys.forget_erased()  # as the next read-model batch or repository read does
    keys.opened = 0
    started, need = read_back(app, plan_id)
    assert isinstance(started.subject, Erased)
    assert need.text != NEED
    assert keys.opened >= 2
    app.close()


def test_an_erasure_made_by_this_process_stops_the_remembered_fields_at_once(store):
    storage, engine, master = store
    keys = CountedKeys(engine, master)
    keys.forget_erased()
    app = SipPlans(env=storage.event_store_env, personal_data=keys)
    personnummer = new_personnummer()
    plan_id = write_plan(app, personnummer)
    keys.erase(PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer), rule="test", at=NOW)
    started, need = read_back(app, plan_id)
    assert isinstance(started.subject, Erased)
    assert need.text != NEED
    app.close()


def test_a_rolled_back_writes_fields_are_never_served(store):
    storage, engine, master = store
    keys = CountedKeys(engine, master)
    keys.forget_erased()
    app = SipPlans(env=storage.event_store_env, personal_data=keys)
    plan_id = write_plan(app, new_personnummer())
    insert_events, rolled_back = app.recorder.insert_events, []

    def failing(stored_events, **kwargs):
        rolled_back.extend(stored_events)
        raise RuntimeError("the write's transaction failed")

    app.recorder.insert_events = failing
    with pytest.raises(RuntimeError):
        app.change(
            plan_id, lambda p: p.record_need(text="aldrig sparad", wishes=None, at=NOW, by=BY)
        )
    app.recorder.insert_events = insert_events
    sealed = [stored for stored in rolled_back if b"_sealed_" in stored.state]
    assert sealed
    keys.opened = 0
    for stored in sealed:
        app.mapper.to_domain_event(stored)
    assert keys.opened >= len(sealed)  # opened, not served from memory
    app.close()


def test_the_access_log_index_keeps_query_and_detail_sealed_without_opening_them(store):
    storage, engine, master = store
    writer = SipPlans(env=storage.event_store_env, personal_data=PersonalDataKeys(engine, master))
    personnummer = new_personnummer()
    with writing(WriteContext(BY, "create", "CarePlan", NOW, detail=f"skapad för {personnummer}")):
        write_plan(writer, personnummer)
    writer.close()
    keys = CountedKeys(engine, master)  # a fresh process: nothing remembered
    reader = SipPlans(env=storage.event_store_env, personal_data=keys)
    log = AccessLogIndex(reader, engine)
    log.rebuild()
    assert "patient" in keys.fields
    assert "detail" not in keys.fields and "query" not in keys.fields
    rows = log.search()
    assert rows
    # Opened when a row is read.
    assert {row["detail"] for row in rows} == {f"skapad för {personnummer}"}
    assert {row["patient_value"] for row in rows} == {personnummer}
    reader.close()
