"""Published event schemas match the code and every stored event; an old event version is
upcast on reading and never rewritten."""

import json

import jsonschema
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import clear_topic_cache, get_topic, register_topic

from services.common.persistence import read_model_engine, storage_for
from services.ops.event_schemas import SCHEMA_FOLDER, generate, published_schemas
from services.ops.verify import database_links, verify_links
from tests.fhir_data import (
    FHIR_JSON,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    withdrawal,
)


def test_the_published_schemas_are_the_ones_the_code_generates():
    assert published_schemas() == generate(), "run: python -m services.ops.event_schemas"


def test_every_event_in_the_feed_validates_against_its_published_schema(fresh_system):
    """The feed is read from position zero: on services of its own."""
    system = fresh_system
    personnummer = new_personnummer()
    given = system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    plan = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    prepare_for_activation(system.sip, plan.json()["id"])
    system.sip.post(f"/fhir/CarePlan/{plan.json()['id']}/$activate")
    system.consent.post(f"/fhir/Consent/{given.json()['id']}/$withdraw", json=withdrawal(),
                        headers=FHIR_JSON)  # fmt: skip
    auditor = system.as_caller("auditor")
    for service, client in (("sip", auditor.sip), ("consent", auditor.consent)):
        events = client.get("/events", params={"limit": 1000}).json()["events"]
        types = set()
        for stored in events:
            name = stored["type"].split(":")[1]
            version = stored["payload"].get("class_version", 1)
            schema_file = SCHEMA_FOLDER / service / f"{name}.v{version}.json"
            schema = json.loads(schema_file.read_text())
            jsonschema.validate(stored["payload"], schema)
            types.add(name)
        assert len(types) >= 3


class Note(Aggregate):
    """An aggregate as first written: its event has a text."""

    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text


class NoteV2(Aggregate):
    """The same aggregate after its event gained a language: version 1 events are upcast."""

    class Written(Aggregate.Created):
        class_version = 2
        text: str
        language: str

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["language"] = "sv"

    @event(Written)
    def __init__(self, text: str, language: str) -> None:
        self.text = text
        self.language = language


def test_an_old_event_version_is_upcast_on_reading_and_never_rewritten(tmp_path):
    # An application outside the services' migration histories creates its own tables.
    env = {**storage_for("notes", None, tmp_path).event_store_env, "CREATE_TABLE": "true"}
    before = Application(env=env)
    note = Note(text="Jag vill bo kvar hemma")
    before.save(note)
    before.close()
    # The code changes: the old topics now name the new classes.
    old_topics = get_topic(Note), get_topic(Note.Written)
    clear_topic_cache()
    register_topic(old_topics[0], NoteV2)
    register_topic(old_topics[1], NoteV2.Written)
    try:
        after = Application(env=env)
        read = after.repository.get(note.id)
        assert (type(read), read.text, read.language) == (NoteV2, note.text, "sv")
        stored = after.recorder.select_notifications(start=1, limit=1)[0]
        assert b"language" not in stored.state  # the stored bytes are still version 1
        after.close()
    finally:
        clear_topic_cache()
    engine = read_model_engine(storage_for("notes", None, tmp_path))
    result = verify_links(database_links(engine, "stored_events", "event_chain"))
    engine.dispose()
    assert result.intact and result.events == 1
