"""The data keys an event write seals under are made and checked in the events' own
transaction (docs/decisions/0007, services/common/personal_data/in_write.py): an erasure
committed between the mapper's look-up of a person's key and the write's commit, or another
writer making the same person's first key meanwhile, never loses an entry nor leaves one
sealed under a key that is gone."""

from datetime import UTC, datetime

from sqlalchemy import func, select

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from services.common.access_log import WriteContext, writing
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.envelope import Erased, ErasedText
from services.common.personal_data.keys import PersonalDataKeys, personal_data_keys
from services.common.personal_data.master_key import MasterKey, MasterKeys
from services.sip.application import SipPlans
from services.sip.domain import Plan
from tests.conftest import Backend, migrated
from tests.fhir_data import new_personnummer, started_by_region

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
BY = {"subject": "anna", "role": "coordinator", "organization": "SE2321000032-R1", "unit": None}
NEED = "vill kunna bo kvar hemma"


def open_store(backend):
    url = backend.database_urls["sip"]
    storage = storage_for("sip", url, backend.data_dir)
    return storage, read_model_engine(storage)


def two_key_stores(backend):
    """A migrated store, its engine, a master key, and two key stores on the store under
    that key: this process's and another replica's."""
    migrated(backend)
    storage, engine = open_store(backend)
    master = MasterKeys(MasterKey.generate())
    return (
        storage,
        engine,
        master,
        PersonalDataKeys(engine, master),
        PersonalDataKeys(engine, master),
    )


def plan_of(personnummer):
    """What a plan of the person is started with."""
    return started_by_region(personnummer, at=NOW, by=BY, region="SE2321000032-R1")


def start(app, personnummer):
    return app.start(**plan_of(personnummer)).id


def person_keys(engine, personnummer, keys):
    index = keys.person_index(PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer))
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(personal_data_keys.c.person_index == index)
        ).scalar_one()


def after_look_up(keys, then):
    """Runs `then()` once, right after the mapper's next look-up of a key: as if another
    process committed it between the look-up and the write's transaction."""
    looked_up = keys.key_for_write

    def racing(person, retention_class):
        found = looked_up(person, retention_class)
        keys.key_for_write = looked_up
        then()
        return found

    keys.key_for_write = racing


def test_an_erasure_between_the_key_look_up_and_the_commit_loses_no_entry(backend):
    storage, engine, master, keys, elsewhere = two_key_stores(backend)
    personnummer = new_personnummer()
    person = PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer)
    try:
        app = SipPlans(env=storage.event_store_env, personal_data=keys)
        plan_id = start(app, personnummer)
        erased = []
        after_look_up(
            keys, lambda: erased.extend(elsewhere.erase(person, rule="SoL 5 years", at=NOW))
        )
        app.change(plan_id, lambda p: p.record_need(text=NEED, wishes=None, at=NOW, by=BY))
        assert erased  # the key the look-up found was erased before the write committed
        app.close()

        fresh = SipPlans(
            env=storage.event_store_env, personal_data=PersonalDataKeys(engine, master)
        )
        started, need = list(fresh.events.get(plan_id))
        assert isinstance(started.subject, Erased)  # what was written before the erasure
        assert need.text == NEED  # written after it, under a new key: not lost
        assert person_keys(engine, personnummer, keys) == 1  # the new key, live
        fresh.close()
    finally:
        engine.dispose()


def test_two_writers_making_a_persons_first_key_at_once_share_one_key(backend):
    storage, engine, master, first_keys, second_keys = two_key_stores(backend)
    personnummer = new_personnummer()
    try:
        first = SipPlans(env=storage.event_store_env, personal_data=first_keys)
        second = SipPlans(env=storage.event_store_env, personal_data=second_keys)
        made = []
        # The first writer found no key and made one; the second commits its own meanwhile.
        after_look_up(first_keys, lambda: made.append(start(second, personnummer)))
        plan_id = start(first, personnummer)
        assert made
        assert person_keys(engine, personnummer, first_keys) == 1
        reader = SipPlans(
            env=storage.event_store_env, personal_data=PersonalDataKeys(engine, master)
        )
        for each in (plan_id, made[0]):
            assert reader.aggregate(each).subject["value"] == personnummer
        for app in (first, second, reader):
            app.close()
    finally:
        engine.dispose()


def test_a_new_persons_key_is_stored_only_by_the_write_that_uses_it(tmp_path):
    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage, engine = open_store(backend)
    keys = PersonalDataKeys(engine, MasterKeys(MasterKey.generate()))
    personnummer = new_personnummer()
    try:
        app = SipPlans(env=storage.event_store_env, personal_data=keys)
        plan = Plan(**plan_of(personnummer))
        (event,) = plan.collect_events()
        app.mapper.to_stored_event(event)  # sealed, never written: a write that failed
        assert person_keys(engine, personnummer, keys) == 0
        start(app, personnummer)
        assert person_keys(engine, personnummer, keys) == 1
        app.close()
    finally:
        engine.dispose()


def test_a_write_under_a_live_key_is_sealed_once_and_not_retried(backend):
    migrated(backend)
    storage, engine = open_store(backend)
    keys = PersonalDataKeys(engine, MasterKeys(MasterKey.generate()))
    looked_up = keys.key_for_write
    calls = []

    def counted(person, retention_class):
        calls.append(retention_class)
        return looked_up(person, retention_class)

    keys.key_for_write = counted
    try:
        app = SipPlans(env=storage.event_store_env, personal_data=keys)
        plan_id = start(app, new_personnummer())
        app.change(plan_id, lambda p: p.record_need(text=NEED, wishes=None, at=NOW, by=BY))
        assert calls == ["region", "region"]  # one look-up per write: the check found it live
        app.close()
    finally:
        engine.dispose()


def test_a_persons_creation_and_first_entries_in_one_write_share_one_new_key(tmp_path):
    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage, engine = open_store(backend)
    keys = PersonalDataKeys(engine, MasterKeys(MasterKey.generate()))
    personnummer = new_personnummer()
    try:
        app = SipPlans(env=storage.event_store_env, personal_data=keys)
        plan = Plan(**plan_of(personnummer))
        plan.record_need(text=NEED, wishes=None, at=NOW, by=BY)
        app.save(plan)  # one transaction, the person's key not yet stored when both are sealed
        assert person_keys(engine, personnummer, keys) == 1
        started, need = list(app.events.get(plan.id))
        assert started.subject["value"] == personnummer and need.text == NEED
        app.close()
    finally:
        engine.dispose()


def test_a_key_remembered_live_then_erased_elsewhere_is_not_written_under(backend):
    """The key a person's last write found live is used for their next write without asking
    the database; erased by another replica in between, the write's transaction refuses it
    and the write is sealed again under a new key: nothing lost, nothing under the old key."""
    storage, engine, master, keys, elsewhere = two_key_stores(backend)
    personnummer = new_personnummer()
    person = PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer)
    try:
        app = SipPlans(env=storage.event_store_env, personal_data=keys)
        plan_id = start(app, personnummer)
        app.change(plan_id, lambda p: p.record_need(text="först", wishes=None, at=NOW, by=BY))
        (old_key,) = elsewhere.erase(person, rule="SoL 5 years", at=NOW)
        app.change(plan_id, lambda p: p.record_need(text=NEED, wishes=None, at=NOW, by=BY))
        app.close()

        fresh = SipPlans(
            env=storage.event_store_env, personal_data=PersonalDataKeys(engine, master)
        )
        started, first, need = list(fresh.events.get(plan_id))
        assert isinstance(started.subject, Erased) and started.subject.key_id == old_key
        # A plan's free text reads as a text naming its erasure (decision 0007).
        assert isinstance(first.text, ErasedText) and first.text.erased.key_id == old_key
        assert need.text == NEED  # written after the erasure, under the person's new key
        assert person_keys(engine, personnummer, keys) == 1
        fresh.close()
    finally:
        engine.dispose()


def test_a_persons_later_writes_use_the_key_their_first_write_stored(tmp_path):
    """One database look-up per person, for every class at once: the key their first write
    made and committed is the next writes' (each checked live by its own transaction, the
    tests above)."""
    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage, engine = open_store(backend)
    keys = PersonalDataKeys(engine, MasterKeys(MasterKey.generate()))
    looked_up = keys._live_keys
    calls = []

    def counted(index):
        calls.append(index)
        return looked_up(index)

    keys._live_keys = counted
    try:
        app = SipPlans(env=storage.event_store_env, personal_data=keys)
        personnummer = new_personnummer()
        plan_id = start(app, personnummer)
        for text in ("ett", "två", "tre"):
            app.change(plan_id, lambda p, t=text: p.record_need(text=t, wishes=None, at=NOW, by=BY))
        # The first write found none and made it; no more asked.
        assert calls == [keys.person_index(PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer))]
        assert [e.text for e in list(app.events.get(plan_id))[1:]] == ["ett", "två", "tre"]
        assert person_keys(engine, personnummer, keys) == 1
        app.close()
    finally:
        engine.dispose()


def test_a_class_remembered_without_a_key_then_made_elsewhere_gets_no_second_key(backend):
    """A person's first look-up learns every class at once, those they have no key of
    included; another writer making their key of such a class meanwhile is found by the
    write's transaction, and the write is sealed again under that key."""
    storage, engine, _, keys, elsewhere = two_key_stores(backend)
    personnummer = new_personnummer()
    person = PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer)
    try:
        app = SipPlans(env=storage.event_store_env, personal_data=keys)
        plan_id = start(app, personnummer)  # no access record: no `access` key yet
        theirs = elsewhere.key_for(person, "access")  # another replica's access record
        with writing(WriteContext(BY, "operation", "CarePlan", NOW)):
            app.change(plan_id, lambda p: p.record_need(text=NEED, wishes=None, at=NOW, by=BY))
        index = keys.person_index(person)
        with engine.connect() as connection:
            access_keys = connection.execute(
                select(personal_data_keys.c.key_id).where(
                    personal_data_keys.c.person_index == index,
                    personal_data_keys.c.retention_class == "access",
                )
            ).scalars()
            assert list(access_keys) == [theirs.key_id]
        records = [
            n
            for n in app.recorder.select_notifications(start=1, limit=100)
            if "AccessRecord" in n.topic
        ]
        assert len(records) == 1 and theirs.key_id.encode() in records[0].state
        assert list(app.events.get(plan_id))[-1].text == NEED
        app.close()
    finally:
        engine.dispose()
