"""Group commit (services/common/audit/group_commit.py): saves arriving together share one
transaction, on SQLite and PostgreSQL, and still each gets its own outcome: every save that
returned is stored and chained, a save refused by the database (its version or its business
identifier taken) fails alone while the others in its batch commit, and a failure of the
transaction as a whole reaches every save in it."""

import threading
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from services.common.access_log import AccessRecord
from services.common.audit.group_commit import GroupCommit, Save
from services.common.persistence import read_model_engine, storage_for
from services.ops.offline import open_service
from services.ops.verify import database_links, verify_links

ACTOR = {"subject": "test", "role": "integration", "organization": "SE2321000032-R1"}


def record(detail: str = "test") -> AccessRecord:
    return AccessRecord(
        interaction="read", action="R", outcome="0", actor=ACTOR, patient=None,
        custodian=None, entity=None, consents=[], query=None, detail=detail,
        recorded_at=datetime.now(UTC),
    )  # fmt: skip


def stored(application, aggregate) -> list:
    """The aggregate's pending events as the recorder is given them."""
    return [application.mapper.to_stored_event(event) for event in aggregate.collect_events()]


@pytest.fixture
def consent_service(backend):
    with open_service("consent", backend.data_dir, backend.database_urls["consent"]) as service:
        yield service


def chain_of(backend, recorder):
    engine = read_model_engine(
        storage_for("consent", backend.database_urls["consent"], backend.data_dir)
    )
    try:
        return verify_links(
            database_links(engine, recorder.events_table_name, recorder.chain_table)
        )
    finally:
        engine.dispose()


def hold_first_batch_until(group: GroupCommit, waiting: int) -> None:
    """The first batch starts writing only once `waiting` saves queue behind it, so the next
    batch is shared whatever the machine's speed (without this it merely usually is)."""
    write, held = group._write_batch, []

    def slowed(batch: list[Save]) -> None:
        if not held:
            held.append(True)
            for _ in range(1000):
                with group._lock:
                    if len(group._waiting) >= waiting:
                        break
                threading.Event().wait(0.005)
        write(batch)

    group._write_batch = slowed


def in_threads(count: int, work) -> list:
    """Runs `work(number)` in `count` threads started together; each one's result or error."""
    outcomes: list = [None] * count
    start = threading.Barrier(count)

    def run(number: int) -> None:
        start.wait()
        try:
            outcomes[number] = work(number)
        except Exception as error:  # the outcome the test looks at
            outcomes[number] = error

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_concurrent_saves_share_commits_and_every_one_is_stored_and_chained(
    backend, consent_service
):
    application = consent_service.application
    group = application.recorder.group_commit
    hold_first_batch_until(group, waiting=7)

    def save_records(number: int) -> list:
        records = [record(f"{number}-{each}") for each in range(5)]
        for each in records:
            application.save(each)
        return records

    outcomes = in_threads(8, save_records)
    saved = [each for outcome in outcomes for each in outcome]  # raises if a save failed
    assert len(saved) == 40
    assert group.saves == 40
    assert group.batches < group.saves  # some commits were shared
    for each in saved:
        assert application.repository.get(each.id).detail == each.detail
    chain = chain_of(backend, application.recorder)
    assert chain.intact and chain.events == 40


def test_a_save_whose_version_is_taken_fails_alone_and_the_others_in_its_batch_commit(
    backend, consent_service
):
    application = consent_service.application
    recorder = application.recorder
    taken = record("first")
    application.save(taken)
    first_event = application.mapper.to_stored_event(next(application.events.get(taken.id)))
    before, again, after = record("before"), record("again"), record("after")
    batch = [
        Save(stored(application, before), {}),
        Save([*stored(application, again), first_event], {}),
        Save(stored(application, after), {}),
    ]
    recorder._write_batch(batch)
    assert isinstance(batch[1].error, IntegrityError)
    with pytest.raises(IntegrityError):
        batch[1].outcome()
    assert batch[0].error is None and batch[2].error is None
    assert len(batch[0].outcome()) == 1 and len(batch[2].outcome()) == 1
    assert application.repository.get(before.id).detail == "before"
    assert application.repository.get(after.id).detail == "after"
    assert not list(application.events.get(again.id))  # none of the refused save's events
    assert application.repository.get(taken.id).detail == "first"
    chain = chain_of(backend, recorder)
    assert chain.intact and chain.events == 3


def test_a_business_identifier_claimed_twice_in_one_batch_is_given_once(backend, consent_service):
    application = consent_service.application
    claim = {
        "resource_type": "Consent", "organization": "SE2321000032-R1",
        "system": "urn:test", "value": "same", "resource_id": "",
    }  # fmt: skip
    first, second = record("first"), record("second")
    batch = [
        Save(
            stored(application, each),
            {"business_identifiers": [{**claim, "resource_id": str(each.id)}]},
        )
        for each in (first, second)
    ]
    application.recorder._write_batch(batch)
    assert batch[0].error is None
    assert isinstance(batch[1].error, IntegrityError)
    assert application.repository.get(first.id).detail == "first"
    assert not list(application.events.get(second.id))


def test_concurrent_changes_of_one_aggregate_in_one_batch_give_each_version_once(
    backend, consent_service
):
    """Four requests change what each read as version 1: one wins, the others are refused as
    they were one commit at a time (the API answers them 409), and nothing is half stored."""
    application = consent_service.application
    target = record("v1")
    application.save(target)
    group = application.recorder.group_commit
    hold_first_batch_until(group, waiting=4)
    # A fifth save (a spacer) starts with them: whichever leads the first batch, four
    # saves queue behind it and share the second, three of the changes at least.
    spacer = threading.Thread(target=application.save, args=(record("spacer"),))
    spacer.start()

    def change(number: int) -> int:
        copy = application.repository.get(target.id)
        copy.trigger_event(AccessRecord.Event)  # a version 2 with no change of state
        return len(application.save(copy))

    outcomes = in_threads(4, change)
    spacer.join()
    assert group.batches == 1 + 2
    assert sorted(type(outcome).__name__ for outcome in outcomes) == [
        "IntegrityError", "IntegrityError", "IntegrityError", "int",
    ]  # fmt: skip
    assert application.repository.get(target.id).version == 2
    chain = chain_of(backend, application.recorder)
    assert chain.intact and chain.events == 3


def test_a_failed_transaction_fails_every_save_in_it_and_none_returns_before_it_ends():
    entered, release = threading.Event(), threading.Event()
    batches: list[int] = []

    def write_batch(batch: list[Save]) -> None:
        batches.append(len(batch))
        if len(batches) == 1:
            entered.set()
            release.wait(10)
            for save in batch:
                save.notification_ids = [1]
            return
        raise OperationalError("disk I/O error")

    group = GroupCommit(write_batch)
    returned: list = []

    def save(number: int) -> None:
        try:
            returned.append(group.save([], number=number))
        except OperationalError as error:
            returned.append(error)

    first = threading.Thread(target=save, args=(0,))
    first.start()
    assert entered.wait(10)
    others = [threading.Thread(target=save, args=(n,)) for n in range(1, 4)]
    for thread in others:
        thread.start()
    for _ in range(2000):  # the three queue behind the first batch
        with group._lock:
            if len(group._waiting) == 3:
                break
        threading.Event().wait(0.005)
    assert returned == []  # the first is not answered before its commit ends
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert batches == [1, 3]
    assert returned[0] == [1]
    assert [type(outcome) for outcome in returned[1:]] == [OperationalError] * 3
    assert group.batches == 2 and not group._writing


def test_the_event_store_flushes_each_commit_to_disk_before_it_returns(backend, consent_service):
    """What decision 0011 says the commits rely on: SQLite in WAL mode with synchronous=FULL
    (the WAL is synced at every commit), PostgreSQL with synchronous_commit on (a commit returns
    once its WAL is flushed). Either one relaxed would answer writes a crash could lose."""
    datastore = consent_service.application.recorder.datastore
    if backend.name == "sqlite":
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0].lower() == "wal"
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 2  # FULL
    else:
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()["synchronous_commit"] == "on"
            cursor.execute("SHOW fsync")
            assert cursor.fetchone()["fsync"] == "on"
