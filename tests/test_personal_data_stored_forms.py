"""Both forms the log holds sealed fields in (services/common/personal_data/sealed_state.py):
events stored with one envelope per field, before stop 30, read as before by every reader (the
plan, the feed's payload, the access-log index, a rebuild's key prefetch, the retention scan,
an erasure), beside the events written since with one envelope per class; and an envelope
changed or moved does not open."""

import json
import sqlite3
from datetime import UTC, datetime

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from services.common.access_log import WriteContext, writing
from services.common.access_log_views import AccessLogIndex
from services.common.domain import NotFound
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.envelope import TamperedValue, seal_bytes
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.master_key import MasterKey, MasterKeys
from services.common.personal_data.sealed_state import SEALED, person_key_id, sealed_parts
from services.ops.retention import sealed_key_ids
from services.sip.application import SipPlans
from tests.conftest import Backend, migrated
from tests.fhir_data import new_personnummer, started_by_region

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
BY = {"subject": "anna", "role": "coordinator", "organization": "SE2321000032-R1", "unit": None}
NEED = "vill kunna bo kvar hemma med stöd av hemtjänst"
LATER_NEED = "behöver hjälp med att handla"


@pytest.fixture
def store(tmp_path):
    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage = storage_for("sip", None, backend.data_dir)
    engine = read_model_engine(storage)
    master = MasterKeys(MasterKey.generate())

    def application():  # a new process: nothing remembered
        keys = PersonalDataKeys(engine, master)
        return SipPlans(env=storage.event_store_env, personal_data=keys), keys

    yield backend.data_dir / "sip.sqlite", application, engine
    engine.dispose()


def write_plan(app, personnummer):
    with writing(WriteContext(BY, "create", "CarePlan", NOW, detail=f"skapad för {personnummer}")):
        plan_id = app.start(
            **started_by_region(personnummer, at=NOW, by=BY, region="SE2321000032-R1")
        ).id
        app.change(plan_id, lambda p: p.record_need(text=NEED, wishes=None, at=NOW, by=BY))
    return plan_id


def context(stream, version, topic):
    return f"{stream}\x00{version}\x00{topic}\x00".encode()


def as_stored_per_field(keys, stream, version, topic, state):
    """The stored state as the mapper wrote it before stop 30: each field sealed by itself,
    under the key its envelope names, its associated data the event's and the field's name."""
    state = dict(state)
    for part in sealed_parts(state):
        prefix = context(stream, version, topic)
        key = keys.key_of(part.key_id)
        for name, value in part.fields(keys.open_bytes(part.sealed, part.context(prefix)),
                                       json.loads).items():  # fmt: skip
            plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
            state[name] = {SEALED: seal_bytes(key, plain, prefix + name.encode())}
    state.pop(SEALED, None)
    return state


def rewrite_per_field(database, keys):
    """Every stored event of the SIP database rewritten in the per-field form."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events"
        ).fetchall()
        rewritten = 0
        for stream, version, topic, state in rows:
            stored = json.loads(state)
            if SEALED not in stored:
                continue
            uuid = f"{stream[:8]}-{stream[8:12]}-{stream[12:16]}-{stream[16:20]}-{stream[20:]}"
            per_field = as_stored_per_field(keys, uuid, version, topic, stored)
            connection.execute(
                "UPDATE stored_events SET state = ? WHERE originator_id = ?"
                " AND originator_version = ?",
                (json.dumps(per_field).encode(), stream, version),
            )
            rewritten += 1
    return rewritten


def stored_states(database):
    with sqlite3.connect(database) as connection:
        return [
            json.loads(state)
            for (state,) in connection.execute(
                "SELECT state FROM stored_events ORDER BY originator_id, originator_version"
            )
        ]


def test_events_sealed_per_field_read_as_before_beside_those_sealed_per_class(store):
    database, application, engine = store
    app, keys = application()
    kept, erased = new_personnummer(), new_personnummer()
    plans = {personnummer: write_plan(app, personnummer) for personnummer in (kept, erased)}
    # One envelope per class: the access records' patient and detail together.
    access = [s for s in stored_states(database) if "recorded_at" in s and SEALED in s]
    assert access and all(s[SEALED][0]["f"] == ["patient", "detail"] for s in access)
    assert rewrite_per_field(database, keys) >= 8
    app.close()
    states = stored_states(database)
    assert not any(SEALED in state for state in states)
    per_field = [v for s in states for v in s.values() if isinstance(v, dict) and SEALED in v]
    assert len(per_field) >= 10

    app, keys = application()
    plan = app.aggregate(plans[kept])
    assert plan.subject["value"] == kept and [n.text for n in plan.needs.values()] == [NEED]
    # Written now, one envelope per class, after the events sealed per field.
    app.change(plans[kept], lambda p: p.record_need(text=LATER_NEED, wishes=None, at=NOW, by=BY))
    app.close()

    app, keys = application()
    plan = app.aggregate(plans[kept])
    assert [n.text for n in plan.needs.values()] == [NEED, LATER_NEED]
    events = app.recorder.select_events(plans[kept])
    assert SEALED in json.loads(events[-1].state) and SEALED not in json.loads(events[0].state)
    # The feed's payload, in both forms.
    assert app.mapper.opened_payload(events[0])["subject"]["value"] == kept
    assert app.mapper.opened_payload(events[1])["text"] == NEED
    assert app.mapper.opened_payload(events[-1])["text"] == LATER_NEED
    # A rebuild's prefetch finds the keys both forms name.
    app.mapper.keep_keys_of(events)
    named = {part.key_id for e in events for part in sealed_parts(json.loads(e.state))}
    assert len(named) == 1 and all(keys.kept(key_id) for key_id in named)
    # The retention scan: the keys each event holds, and the record's person key.
    first = json.loads(events[0].state)
    assert set(sealed_key_ids(first)) == named == {person_key_id(first, "subject")}
    assert set(sealed_key_ids(json.loads(events[-1].state))) == named
    # The access-log index, rebuilt from records sealed per field.
    log = AccessLogIndex(app, engine)
    log.rebuild()
    rows = log.search(patient_value=kept)
    assert rows and {row["detail"] for row in rows} == {f"skapad för {kept}"}
    # An erasure of a person whose record is sealed per field.
    keys.erase(PersonIdentifier(PERSONNUMMER_SYSTEM, erased), rule="SoL 5 years", at=NOW)
    restarted, _ = application()
    with pytest.raises(NotFound):
        restarted.aggregate(plans[erased])
    assert restarted.aggregate(plans[kept]).subject["value"] == kept
    first_erased = restarted.recorder.select_events(plans[erased], lte=1, limit=1)[0]
    payload = restarted.mapper.opened_payload(first_erased)
    assert payload["subject"] == {"erased": {"at": NOW.isoformat(), "rule": "SoL 5 years"}}
    restarted.close()
    app.close()


def tamper(database, stream, version, change):
    with sqlite3.connect(database) as connection:
        (state,) = connection.execute(
            "SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = ?",
            (stream.hex, version),
        ).fetchone()
        state = json.loads(state)
        change(state)
        connection.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (json.dumps(state).encode(), stream.hex, version),
        )


@pytest.mark.parametrize(
    "change",
    [
        # Its fields renamed: the need's text passed off as its wishes.
        lambda state: state[SEALED][0].update(f=["wishes"]),
        # Passed off as a per-field value of the same field.
        lambda state: state.update(text={SEALED: state.pop(SEALED)[0]}),
        # A byte of its ciphertext changed.
        lambda state: state[SEALED][0].update(c=state[SEALED][0]["c"][::-1]),
        # Not an envelope at all.
        lambda state: state.update({SEALED: [{"k": state[SEALED][0]["k"]}]}),
    ],
    ids=["renamed", "per-field", "changed", "malformed"],
)
def test_an_envelope_changed_does_not_open(store, change):
    database, application, _ = store
    app, _ = application()
    plan_id = write_plan(app, new_personnummer())
    app.close()
    tamper(database, plan_id, 2, change)
    app, _ = application()
    with pytest.raises(TamperedValue):
        list(app.events.get(plan_id))
    app.close()
