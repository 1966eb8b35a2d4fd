"""The SIP plan events stored through the personal-data mapper (docs/decisions/0007): the
event store holds no personnummer and no free text in clear, the plan reads back as written,
the hash chain verifies without a key, and after an erasure the personal fields read as
erased while the chain still verifies. The mapper is not yet switched on in the service (its
read models and access records still hold the number), so the SIP application is given it
here."""

import json
import sqlite3
from datetime import UTC, datetime

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from contracts.personal_fields import PERSONAL_FIELDS
from services.cli import main as sip
from services.common.domain import NotFound
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.envelope import Erased, ErasedText, TamperedValue
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.mapper import PersonalDataMapper
from services.common.personal_data.master_key import MasterKey, MasterKeys
from services.sip.application import SipPlans
from tests.conftest import Backend, migrated
from tests.fhir_data import new_personnummer, started_by_region

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
BY = {"subject": "anna", "role": "coordinator", "organization": "SE2321000032-R1", "unit": None}
PHRASE = "vill kunna bo kvar hemma med stöd av hemtjänst"
TITLE = "Samordnad plan för Kalle Kula"


class EncryptedPlans(SipPlans):
    keys: PersonalDataKeys

    def construct_mapper(self):
        return PersonalDataMapper(
            self.construct_transcoder(), self.keys, PERSONAL_FIELDS, self._first_event
        )

    def _first_event(self, stream):
        events = self.recorder.select_events(stream, lte=1, limit=1)
        return events[0] if events else None


@pytest.fixture
def store(tmp_path):
    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage = storage_for("sip", None, backend.data_dir)
    engine = read_model_engine(storage)
    master = MasterKeys(MasterKey.generate())

    def application():
        app_class = type(
            "Plans",
            (EncryptedPlans,),
            {"keys": PersonalDataKeys(engine, master), "name": SipPlans.name},
        )
        return app_class(env=storage.event_store_env)

    yield backend.data_dir, application, engine, master
    engine.dispose()


def start_plan(app, personnummer):
    plan = app.start(
        **started_by_region(personnummer, at=NOW, by=BY, title=TITLE, region="SE2321000032-R1")
    )
    app.change(plan.id, lambda p: p.record_need(text=PHRASE, wishes=None, at=NOW, by=BY))
    app.change(
        plan.id,
        lambda p: p.set_goal(text="Klara sig själv", target_date=NOW.date(), need_ids=["need-1"],
                             at=NOW, by=BY),
    )  # fmt: skip
    return plan.id


def stored_bytes(data_dir):
    with sqlite3.connect(data_dir / "sip.sqlite") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return b"".join(path.read_bytes() for path in data_dir.glob("sip.sqlite*"))


def test_the_event_store_holds_no_personal_data_in_clear_and_reads_back_as_written(store):
    data_dir, application, _, _ = store
    personnummer, other = new_personnummer(), new_personnummer()
    app = application()
    plan_id = start_plan(app, personnummer)
    start_plan(app, other)
    app.close()

    written = stored_bytes(data_dir)
    for clear in (personnummer, other, PHRASE, TITLE, "Klara sig"):
        assert clear.encode() not in written, clear
    assert b"_sealed_" in written  # the events are there, sealed

    restarted = application()  # another process: nothing kept in memory
    plan = restarted.aggregate(plan_id)
    assert plan.subject == {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
    assert plan.title == TITLE and plan.description is None
    assert [need.text for need in plan.needs.values()] == [PHRASE]
    assert [goal.target_date for goal in plan.goals.values()] == [NOW.date()]  # a date again
    # A later event of a stream whose person this process has not seen yet.
    restarted.change(plan_id, lambda p: p.record_need(text="Sömn", wishes="lugn", at=NOW, by=BY))
    assert len(application().aggregate(plan_id).needs) == 2
    restarted.close()
    assert sip(["audit", "verify", "--service", "sip", "--data-dir", str(data_dir)]) == 0


def test_an_erased_person_reads_as_erased_others_unchanged_and_the_chain_still_verifies(store):
    data_dir, application, engine, master = store
    erased, kept = new_personnummer(), new_personnummer()
    app = application()
    erased_plan, kept_plan = start_plan(app, erased), start_plan(app, kept)
    keys = PersonalDataKeys(engine, master)
    keys.erase(PersonIdentifier(PERSONNUMMER_SYSTEM, erased), rule="SoL 5 years", at=NOW)

    fresh = application()
    started, need, _ = list(fresh.events.get(erased_plan))
    # The person as `Erased`; the free texts as texts naming the erasure, ids in clear.
    assert isinstance(started.subject, Erased) and isinstance(started.title, ErasedText)
    assert started.subject.rule == "SoL 5 years" and started.description is None
    assert started.title == f"erased on {NOW.isoformat()} under 'SoL 5 years'"
    assert isinstance(need.text, ErasedText) and need.need_id == "need-1"
    assert fresh.aggregate(kept_plan).subject["value"] == kept
    # Nothing more is written about them: their plan is answered as an unknown one.
    with pytest.raises(NotFound, match=str(erased_plan)):
        fresh.change(erased_plan, lambda p: p.record_need(text="x", wishes=None, at=NOW, by=BY))
    fresh.close()
    app.close()
    assert sip(["audit", "verify", "--service", "sip", "--data-dir", str(data_dir)]) == 0


def test_a_sealed_field_moved_to_another_event_does_not_open(store):
    data_dir, application, _, _ = store
    app = application()
    plan_id = start_plan(app, new_personnummer())
    app.close()
    with sqlite3.connect(data_dir / "sip.sqlite") as connection:
        rows = connection.execute(
            "SELECT originator_version, state FROM stored_events WHERE originator_id = ?"
            " ORDER BY originator_version",
            (plan_id.hex,),
        ).fetchall()
        # The need's sealed text pasted over the goal's: same key, same person, other event.
        need, goal = json.loads(rows[1][1]), json.loads(rows[2][1])
        goal["text"] = need["text"]
        connection.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = 3",
            (json.dumps(goal).encode(), plan_id.hex),
        )
    with pytest.raises(TamperedValue):
        list(application().events.get(plan_id))


def test_every_declared_personal_field_is_a_field_of_its_stored_event():
    from pathlib import Path

    schemas_of = {
        "services.sip.domain": "sip",
        "services.sip.discharge.stay": "sip",
        "services.sip.messages.message": "sip",
        "services.consent.domain": "consent",
        "services.common.access_log": "sip",  # both services' logs: one schema
    }
    declared_modules = {topic.split(":")[0] for topic in PERSONAL_FIELDS}
    assert declared_modules == set(schemas_of), "every aggregate's events are declared"
    for topic, declared in PERSONAL_FIELDS.items():
        module, name = topic.split(":")
        schemas = Path(__file__).parent.parent / "contracts" / "event_schemas" / schemas_of[module]
        versions = sorted(
            schemas.glob(f"{name}.v*.json"), key=lambda path: int(path.name.split(".v")[-1][:-5])
        )
        assert versions, topic
        newest = json.loads(versions[-1].read_text())["properties"]
        assert set(declared.fields) <= set(newest), (topic, set(declared.fields) - set(newest))
        assert declared.person is None or declared.person in declared.fields
        assert set(declared.person_named_in) <= set(declared.fields)


def test_on_each_backend_the_stored_events_hold_ciphertext_and_the_chain_verifies(backend):
    url = backend.database_urls["sip"]
    storage = storage_for("sip", url, backend.data_dir)
    engine = read_model_engine(storage)
    keys = PersonalDataKeys(engine, MasterKeys(MasterKey.generate()))
    app_class = type("Plans", (EncryptedPlans,), {"keys": keys, "name": SipPlans.name})
    personnummer = new_personnummer()
    try:
        app = app_class(env=storage.event_store_env)
        plan_id = start_plan(app, personnummer)
        app.close()
        with engine.connect() as connection:
            states = [
                bytes(row[0])
                for row in connection.exec_driver_sql(
                    "SELECT state FROM stored_events"
                    if not storage.is_postgres
                    else "SELECT state FROM sipplans_events"
                )
            ]
        assert len(states) == 3
        assert not [s for s in states if personnummer.encode() in s or PHRASE.encode() in s]
        reread = app_class(env=storage.event_store_env).aggregate(plan_id)
        assert reread.subject["value"] == personnummer
        assert [need.text for need in reread.needs.values()] == [PHRASE]
    finally:
        engine.dispose()
    where = ["--sip-database-url", url] if url else ["--data-dir", str(backend.data_dir)]
    assert sip(["audit", "verify", "--service", "sip", *where]) == 0
