"""The personal-data key store (docs/decisions/0007): values sealed per person, found by a
blind index, erased by deleting the key, and a master-key rotation that loses nothing. Run on
a freshly migrated database of each backend, as a service would use it."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from contracts.identifiers import PERSONNUMMER_SYSTEM, InvalidIdentifier, PersonIdentifier
from services.common.data_dir import PRIVATE_FILE
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.envelope import Erased, TamperedValue
from services.common.personal_data.keys import (
    PersonalDataKeys,
    UnknownDataKey,
    personal_data_keys,
)
from services.common.personal_data.master_key import (
    MASTER_KEY_FILE,
    MasterKey,
    MasterKeyProblem,
    MasterKeys,
    master_keys_from_env,
)
from tests.fhir_data import new_personnummer

CONTEXT = b"Plan/4f1c\x00NeedRecorded\x00text"
PHRASE = "vill kunna bo kvar hemma med stöd av hemtjänst"


def someone():
    return PersonIdentifier(PERSONNUMMER_SYSTEM, new_personnummer())


@pytest.fixture
def engine(backend):
    engine = read_model_engine(storage_for("sip", backend.database_urls["sip"], backend.data_dir))
    yield engine
    engine.dispose()


@pytest.fixture
def master():
    return MasterKeys(MasterKey.generate())


def test_a_sealed_value_opens_to_what_was_sealed_and_holds_none_of_it_in_clear(engine, master):
    keys = PersonalDataKeys(engine, master)
    person = someone()
    value = {"text": PHRASE, "subject": {"system": person.system, "value": person.value}}
    sealed = keys.seal(person, "region", value, CONTEXT)
    stored = json.dumps(sealed)
    assert PHRASE not in stored and person.value not in stored and "hemtj" not in stored
    # Another store on the same database (a replica, a restart) opens it too.
    assert PersonalDataKeys(engine, master).open(sealed, CONTEXT) == value
    with engine.connect() as connection:
        dumped = str(connection.execute(select(personal_data_keys)).all())
    assert person.value not in dumped and master.current.secret.hex() not in dumped


def test_one_key_per_person_and_class_whichever_spelling_and_replica_asks(engine, master):
    person = someone()
    hyphenated = PersonIdentifier(person.system, f"{person.value[:8]}-{person.value[8:]}")
    stores = [PersonalDataKeys(engine, master) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(lambda store: store.key_for(person, "municipality"), stores))
    assert {key.key_id for key in made} == {stores[0].key_for(hyphenated, "municipality").key_id}
    assert stores[0].key_for(person, "region").key_id != made[0].key_id
    assert stores[0].person_index(hyphenated) == stores[0].person_index(person)
    assert stores[0].person_index(someone()) != stores[0].person_index(person)
    with pytest.raises(InvalidIdentifier):
        stores[0].person_index(PersonIdentifier(PERSONNUMMER_SYSTEM, "191212121213"))
    with pytest.raises(ValueError, match="retention class"):
        stores[0].key_for(person, "forever")


def test_another_master_key_opens_nothing(engine, master):
    keys = PersonalDataKeys(engine, master)
    sealed = keys.seal(someone(), "region", PHRASE, CONTEXT)
    stranger = PersonalDataKeys(engine, MasterKeys(MasterKey.generate()), cache_seconds=0)
    with pytest.raises(MasterKeyProblem, match="neither SIP_MASTER_KEY"):
        stranger.open(sealed, CONTEXT)


def test_a_changed_ciphertext_a_moved_value_or_a_relabelled_key_fails_loudly(engine, master):
    keys = PersonalDataKeys(engine, master)
    first, second = someone(), someone()
    sealed = keys.seal(first, "region", PHRASE, CONTEXT)
    flipped = sealed["c"][:-2] + ("A" if sealed["c"][-2] != "A" else "B") + sealed["c"][-1]
    with pytest.raises(TamperedValue):
        keys.open({**sealed, "c": flipped}, CONTEXT)
    with pytest.raises(TamperedValue):  # the same bytes in another event or field
        keys.open(sealed, b"Plan/other\x00NeedRecorded\x00text")
    other_key = keys.key_for(second, "region").key_id
    with pytest.raises(TamperedValue):  # claimed to be under the other person's key
        keys.open({**sealed, "k": other_key}, CONTEXT)
    with pytest.raises(UnknownDataKey):
        keys.open({**sealed, "k": "00000000-0000-0000-0000-000000000000"}, CONTEXT)
    with pytest.raises(TamperedValue):
        keys.open({"k": sealed["k"]}, CONTEXT)


def test_a_wrapped_key_copied_onto_another_row_does_not_unwrap(engine, master):
    keys = PersonalDataKeys(engine, master)
    victim, thief = someone(), someone()
    sealed = keys.seal(victim, "region", PHRASE, CONTEXT)
    thief_key = keys.key_for(thief, "region").key_id
    table = personal_data_keys
    with engine.begin() as connection:
        wrapped = connection.execute(
            select(table.c.wrapped_key).where(table.c.key_id == sealed["k"])
        ).scalar_one()
        connection.execute(
            table.update().where(table.c.key_id == thief_key).values(wrapped_key=wrapped)
        )
    with pytest.raises(MasterKeyProblem, match="does not open"):
        PersonalDataKeys(engine, master).key_of(thief_key)


def test_an_erased_person_reads_as_erased_and_nobody_else_changes(engine, master):
    moment = datetime(2031, 5, 1, 2, 0, tzinfo=UTC)
    keys = PersonalDataKeys(engine, master)
    other_replica = PersonalDataKeys(engine, master, cache_seconds=0)
    erased, kept = someone(), someone()
    region = keys.seal(erased, "region", PHRASE, CONTEXT)
    municipality = keys.seal(erased, "municipality", "hemtjänst", CONTEXT)
    theirs = keys.seal(kept, "municipality", PHRASE, CONTEXT)
    assert other_replica.open(municipality, CONTEXT) == "hemtjänst"

    rule = "SoL 5 years after the last entry"
    erased_ids = keys.erase(erased, rule=rule, retention_class="municipality", at=moment)
    assert erased_ids == [municipality["k"]]
    for store in (keys, other_replica):
        assert store.open(municipality, CONTEXT) == Erased(
            municipality["k"], moment.isoformat(), rule
        )
        assert store.open(region, CONTEXT) == PHRASE  # another class, its own date
        assert store.open(theirs, CONTEXT) == PHRASE
    assert keys.erase(erased, rule=rule, retention_class="municipality") == []  # twice: no-op

    with engine.connect() as connection:
        row = connection.execute(
            select(personal_data_keys).where(personal_data_keys.c.key_id == municipality["k"])
        ).one()
    assert row.wrapped_key is None and row.person_index is None and row.master_key_id is None
    # Written about again after the erasure: a new key, the erased values stay erased.
    again = keys.seal(erased, "municipality", "ny plan", CONTEXT)
    assert again["k"] != municipality["k"] and keys.open(again, CONTEXT) == "ny plan"
    assert isinstance(keys.open(municipality, CONTEXT), Erased)


def test_keys_kept_ahead_of_a_rebuild_never_revive_an_erased_one(engine, master):
    """`keep_keys` unwraps a batch's keys in one look-up (a rebuild's); an erased key is not
    kept by it (it reads as erased), an id this database never held stays unknown."""
    keys = PersonalDataKeys(engine, master)
    live, erased = someone(), someone()
    kept_sealed = keys.seal(live, "access", PHRASE, CONTEXT)
    erased_sealed = keys.seal(erased, "access", PHRASE, CONTEXT)
    keys.erase(erased, rule="5 years", at=datetime(2031, 5, 1, tzinfo=UTC))
    fresh = PersonalDataKeys(engine, master)  # a new process: nothing kept
    stranger = "00000000-0000-0000-0000-000000000001"
    fresh.keep_keys([kept_sealed["k"], erased_sealed["k"], stranger])
    fresh._engine = None  # what follows is answered from memory, or fails
    assert fresh.open(kept_sealed, CONTEXT) == PHRASE
    with pytest.raises(AttributeError):  # not kept: the erased key is asked of the database
        fresh.open(erased_sealed, CONTEXT)
    fresh._engine = engine
    assert isinstance(fresh.open(erased_sealed, CONTEXT), Erased)
    with pytest.raises(UnknownDataKey):
        fresh.key_of(stranger)


def test_the_unwrapped_keys_kept_in_memory_are_bounded_and_the_oldest_go_first(engine, master):
    """A rebuild or a long-running process meets every person's keys: memory must not grow
    with the registry. Past `KEYS_KEPT` the least recently kept key is dropped (and is read
    from the database again when asked for)."""
    sealed = [
        PersonalDataKeys(engine, master).seal(someone(), "access", PHRASE, CONTEXT)
        for _ in range(4)
    ]
    fresh = PersonalDataKeys(engine, master)
    fresh.KEYS_KEPT = 3
    fresh.keep_keys([value["k"] for value in sealed])
    fresh._engine = None  # what follows is answered from memory, or fails
    from_memory, dropped = [], []
    for value in sealed:
        try:
            from_memory.append(fresh.open(value, CONTEXT))
        except AttributeError:  # not kept: asked of the database
            dropped.append(value)
    assert from_memory == [PHRASE] * 3 and len(dropped) == 1
    fresh._engine = engine
    assert fresh.open(dropped[0], CONTEXT) == PHRASE


def test_a_master_key_rotation_rewraps_every_key_and_loses_nothing(engine, master):
    old = master.current
    keys = PersonalDataKeys(engine, master)
    people = [someone() for _ in range(5)]
    sealed = [
        keys.seal(person, "region", f"{PHRASE} {n}", CONTEXT) for n, person in enumerate(people)
    ]
    gone = keys.seal(people[0], "access", "läst", CONTEXT)
    keys.erase(people[0], rule="access log 5 years", retention_class="access")
    index_before = keys.person_index(people[1])

    new = MasterKey.generate()
    assert keys.rotate_master_key(new) == len(people) + 1  # and the blind-index key
    assert keys.rotate_master_key(new) == 0  # a second run re-wraps nothing
    with engine.connect() as connection:
        masters = (
            connection.execute(text("SELECT DISTINCT master_key_id FROM personal_data_keys"))
            .scalars()
            .all()
        )
    assert set(masters) == {new.key_id, None}  # None: the erased key

    # A replica restarted on the new key alone reads everything and finds everyone.
    restarted = PersonalDataKeys(engine, MasterKeys(new), cache_seconds=0)
    for n, value in enumerate(sealed):
        assert restarted.open(value, CONTEXT) == f"{PHRASE} {n}"
    assert restarted.person_index(people[1]) == index_before
    assert restarted.key_for(people[1], "region").key_id == sealed[1]["k"]
    assert isinstance(restarted.open(gone, CONTEXT), Erased)
    # The old key opens nothing any more.
    with pytest.raises(MasterKeyProblem):
        PersonalDataKeys(engine, MasterKeys(old), cache_seconds=0).open(sealed[1], CONTEXT)


def test_a_rotation_that_fails_part_way_changes_nothing(engine, master):
    keys = PersonalDataKeys(engine, master)
    people = [someone() for _ in range(3)]
    sealed = [keys.seal(person, "region", PHRASE, CONTEXT) for person in people]
    # One row wrapped by a key this store does not know (a replica already on a newer key):
    # the rotation cannot unwrap it.
    newer = MasterKeys(MasterKey.generate(), previous=(master.current,))
    PersonalDataKeys(engine, newer).key_for(someone(), "consent")
    with pytest.raises(MasterKeyProblem):
        keys.rotate_master_key(MasterKey.generate())
    with engine.connect() as connection:
        masters = set(
            connection.execute(text("SELECT master_key_id FROM personal_data_keys")).scalars()
        )
    assert master.current.key_id in masters and len(masters) == 2
    fresh = PersonalDataKeys(engine, master, cache_seconds=0)
    assert [fresh.open(value, CONTEXT) for value in sealed] == [PHRASE] * 3


def test_the_master_key_comes_from_the_environment_or_a_private_file(tmp_path):
    given = MasterKey.generate()
    previous = MasterKey.generate()
    keys = master_keys_from_env(
        tmp_path,
        {"SIP_MASTER_KEY": given.as_text(), "SIP_MASTER_KEY_PREVIOUS": previous.as_text()},
    )
    assert keys.current == given and keys.by_id(previous.key_id) == previous
    assert not list(tmp_path.iterdir())  # nothing written when the environment names it

    made = master_keys_from_env(tmp_path / "keys", {})
    assert (tmp_path / "keys" / MASTER_KEY_FILE).stat().st_mode & 0o777 == PRIVATE_FILE
    assert master_keys_from_env(tmp_path / "keys", {}).current == made.current

    elsewhere = tmp_path / "vault" / "master"
    elsewhere.parent.mkdir()
    elsewhere.write_text(given.as_text() + "\n")
    assert master_keys_from_env(tmp_path, {"SIP_MASTER_KEY_FILE": str(elsewhere)}).current == given
    with pytest.raises(MasterKeyProblem, match="32 bytes"):
        master_keys_from_env(tmp_path, {"SIP_MASTER_KEY": "c2hvcnQ"})


def test_nothing_is_sealed_under_a_key_another_replica_erased(engine, master):
    writer, retention = PersonalDataKeys(engine, master), PersonalDataKeys(engine, master)
    person = someone()
    before = writer.seal(person, "region", PHRASE, CONTEXT)  # the writer now keeps that key
    retention.erase(person, rule="HSL 10 years")
    after = writer.seal(person, "region", "ny anteckning", CONTEXT)
    assert after["k"] != before["k"]
    assert retention.open(after, CONTEXT) == "ny anteckning"


def test_a_key_look_up_leaves_its_pooled_connection_transactional(engine, master):
    """A look-up runs on the driver's connection (on PostgreSQL outside a transaction, so
    that handing it back costs no ROLLBACK); the next user of that connection (one thread
    takes the same one back) still gets a transaction it can roll back."""
    person = someone()
    made = PersonalDataKeys(engine, master).key_for(person, "region")  # looked up, made
    assert PersonalDataKeys(engine, master).key_for(person, "region") == made  # looked up
    with engine.connect() as connection:
        connection.execute(text("DELETE FROM personal_data_keys"))
        connection.rollback()
    assert PersonalDataKeys(engine, master).key_for(person, "region") == made
