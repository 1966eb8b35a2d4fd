"""No personnummer in clear anywhere the services store (issue 16, docs/decisions/0007): the
read models keep the person's blind index, the access records and the subscriptions' person
filters are sealed, and the API still finds the person by their number as before.

After a realistic run (plans, consents, searches by personnummer in each way a client writes
one, a search by a number that matched nobody, a subscription filtered on the person), every
table of both databases is read (and on SQLite every byte of the database files) for the
number in each written form and for a phrase of the plan's free text."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, inspect, select, text

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from contracts.subscription_topics import PLAN_CHANGED
from services.common.access_log_views import AccessLogIndex
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.master_key import MasterKey, MasterKeys
from services.common.subscriptions.person_filter import (
    filtered_person,
    index_person_filters,
    person_passes,
)
from services.common.subscriptions.store import SubscriptionStore, subscriptions
from services.sip.application import SipPlans
from tests.conftest import Backend, migrated, running_system
from tests.fhir_data import MUNICIPALITY, REGION_NEED, active_plan, new_personnummer
from tests.record_system import RecordSystem, subscribe, subscription


def written_forms(personnummer: str) -> list[bytes]:
    """The ways a personnummer is written: 12 digits, with the hyphen, 10 digits."""
    dashed = f"{personnummer[:8]}-{personnummer[8:]}"
    return [personnummer.encode(), dashed.encode(), personnummer[2:].encode()]


def table_bytes(backend, service: str) -> dict[str, bytes]:
    """Every table of the service's database, every row of it, as bytes (via SQL)."""
    storage = storage_for(service, backend.database_urls[service], backend.data_dir)
    engine = read_model_engine(storage)
    found = {}
    try:
        with engine.connect() as connection:
            for name in inspect(connection).get_table_names():
                rows = connection.execute(select(text("*")).select_from(text(f'"{name}"')))
                found[name] = b"\n".join(
                    b"|".join(
                        value if isinstance(value, bytes) else str(value).encode()
                        for value in (bytes(v) if isinstance(v, memoryview) else v for v in row)
                    )
                    for row in rows
                )
    finally:
        engine.dispose()
    return found


def database_files(backend) -> dict[str, bytes]:
    """The SQLite files themselves (the write-ahead log too), as they lie on disk."""
    files = {}
    for path in Path(backend.data_dir).glob("*.sqlite*"):
        files[path.name] = path.read_bytes()
    return files


def test_no_table_of_either_database_holds_a_personnummer_or_the_plans_free_text(backend):
    with running_system(backend, subscription_endpoints=("loopback",)) as system:
        receiver = RecordSystem()
        try:
            municipality = system.as_caller(
                "integration", MUNICIPALITY, subject=f"rs-{MUNICIPALITY}"
            ).sip
            # The subscription first: it names the person before any plan of theirs exists.
            wanted = new_personnummer()
            subscription_id = subscribe(
                municipality, subscription(PLAN_CHANGED, receiver.url, patient=wanted)
            )
            plan_id, personnummer = active_plan(system)
            followed = subscribe(
                municipality, subscription(PLAN_CHANGED, receiver.url, patient=personnummer)
            )
            nobody = new_personnummer("19700101")
            dashed = f"{personnummer[:8]}-{personnummer[8:]}"
            sip = system.sip
            # Searches by the number, in each way a client gives it: all find the plan.
            for params in (
                {"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
                {"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{dashed}"},
                {"subject:identifier": personnummer},
                {"subject": f"Patient/{personnummer}"},
            ):
                found = sip.get("/fhir/CarePlan", params=params).json()
                assert [e["resource"]["id"] for e in found.get("entry", [])] == [plan_id], params
            by_post = sip.post(
                "/fhir/CarePlan/_search",
                data={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
            ).json()
            assert [e["resource"]["id"] for e in by_post["entry"]] == [plan_id]
            # A number that matches nobody: logged, but the log names no one in clear.
            missed = sip.get("/fhir/CarePlan", params={"subject": f"Patient/{nobody}"}).json()
            assert missed.get("entry", []) == []
            consents = system.consent.get(
                "/fhir/Consent",
                params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
            ).json()
            assert len(consents["entry"]) == 1
            assert (
                system.consent.get("/fhir/Consent", params={"patient": f"Patient/{nobody}"})
                .json()
                .get("entry", [])
                == []
            )

            # The access log still finds the person by their number, and names them.
            auditor = system.as_caller("auditor", subject="ivo")
            for client in (auditor.sip, auditor.consent):
                log = client.get(
                    "/fhir/AuditEvent", params={"patient": f"Patient/{personnummer}"}
                ).json()
                assert log["entry"], client
                named = {
                    entity["what"]["identifier"]["value"]
                    for entry in log["entry"]
                    for entity in entry["resource"].get("entity", [])
                    if entity.get("what", {}).get("type") == "Patient"
                }
                assert named == {personnummer}
            searches = auditor.sip.get(
                "/fhir/AuditEvent", params={"subtype": "search-type", "_count": "100"}
            ).json()
            queries = [
                base64.b64decode(entity["query"]).decode()
                for entry in searches["entry"]
                for entity in entry["resource"].get("entity", [])
                if "query" in entity
            ]
            assert any(nobody in query for query in queries)  # opened as it was asked
            # The subscription shows its filter as it was given.
            shown = municipality.get(f"/fhir/Subscription/{followed}").json()
            assert f"patient={PERSONNUMMER_SYSTEM}|{personnummer}" in str(shown)
            assert municipality.get(f"/fhir/Subscription/{subscription_id}").status_code == 200
        finally:
            receiver.close()

    forms = {
        "personnummer": written_forms(personnummer),
        "unmatched number": written_forms(nobody),
        "subscribed number": written_forms(wanted),
        "free text": [REGION_NEED.encode(), "Handla själv".encode()],
    }
    for service in ("sip", "consent"):
        tables = table_bytes(backend, service)
        assert {"access_log", "personal_data_keys"} <= set(tables), service
        # The scan reads what is there: the records of the run are in these bytes.
        assert tables["access_log"], service
        if service == "sip":
            assert plan_id.encode() in tables["access_log"]
            assert plan_id.encode() in tables["plan_index"]
        for table, stored in tables.items():
            for what, spellings in forms.items():
                for spelling in spellings:
                    assert spelling not in stored, (service, table, what, spelling)
    if backend.name == "sqlite":
        files = database_files(backend)
        assert {"sip.sqlite", "consent.sqlite"} <= set(files)
        for name, stored in files.items():
            for what, spellings in forms.items():
                for spelling in spellings:
                    assert spelling not in stored, (name, what, spelling)


def test_an_erased_access_key_erases_the_access_log_rows_the_person_was_named_in(backend):
    with running_system(backend) as system:
        plan_id, personnummer = active_plan(system)
        auditor = system.as_caller("auditor", subject="ivo")
        asked = {"patient": f"Patient/{personnummer}"}
        before = auditor.sip.get("/fhir/AuditEvent", params=asked).json()
        assert before["entry"]
        # The service's own key store: an erasure stops its reads at once (another replica's
        # once its kept copy of the key expires).
        keys = system.sip_app.state.plans.personal_data
        erased = keys.erase(
            PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer),
            rule="PDL access log, 5 years",
            retention_class="access",
        )
        assert erased
        # Each record's sealed fields read as absent: who the person was, what was asked.
        record_id = before["entry"][0]["resource"]["id"]
        after = auditor.sip.get(f"/fhir/AuditEvent/{record_id}")
        assert after.status_code == 200
        assert personnummer not in after.text
        assert plan_id in after.text  # what was accessed is no personal data: it stays


def _application(tmp_path):

    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage = storage_for("sip", None, backend.data_dir)
    engine = read_model_engine(storage)
    keys = PersonalDataKeys(engine, MasterKeys(MasterKey.generate()))
    return SipPlans(env=storage.event_store_env, personal_data=keys), keys, engine


def _record(**content):

    by = {"subject": "anna", "role": "coordinator", "organization": "SE2321000032-R1"}
    return {
        "interaction": "search-type",
        "action": "R",
        "outcome": "4",
        "actor": by,
        "patient": None,
        "custodian": None,
        "entity": None,
        "consents": [],
        "query": None,
        "detail": None,
        "recorded_at": datetime(2026, 12, 3, 12, tzinfo=UTC),
        **content,
    }


def test_a_record_naming_nobody_is_sealed_under_the_person_its_query_names_or_not_at_all(
    tmp_path,
):
    """A search that matched nobody: sealed under the `access` key of the person the number
    names (made then); with no valid number in it, there is no one to seal it for."""

    app, keys, engine = _application(tmp_path)
    try:
        named, typo = new_personnummer(), new_personnummer()
        typo = typo[:-1] + str((int(typo[-1]) + 1) % 10)  # the check digit fails
        dashed = f"{named[:8]}-{named[8:]}"
        records = app.record_accesses(
            [
                _record(query=f"subject%3Aidentifier=x%7C{dashed}", detail="no match"),
                _record(query="status=active", detail="no match"),
                _record(query=f"subject={typo}", detail="no match"),
            ]
        )
        stored = {
            record.id: app.recorder.select_events(record.id, limit=1)[0].state for record in records
        }
        sealed_one, plain, mistyped = (stored[record.id] for record in records)
        assert dashed.encode() not in sealed_one and b"_sealed_" in sealed_one
        assert b"_sealed_" not in plain and b"_sealed_" not in mistyped
        log = AccessLogIndex(app, engine)
        rows = {row["record_id"]: row for row in log.search()}
        assert rows[str(records[0].id)]["query"] == f"subject%3Aidentifier=x%7C{dashed}"
        assert rows[str(records[0].id)]["detail"] == "no match"
        # Erasing that person's access records erases this one too.
        keys.erase(
            PersonIdentifier(PERSONNUMMER_SYSTEM, named), rule="PDL", retention_class="access"
        )
        rows = {row["record_id"]: row for row in AccessLogIndex(app, engine).search()}
        assert rows[str(records[0].id)]["query"] is None
        assert rows[str(records[1].id)]["query"] == "status=active"
    finally:
        app.close()
        engine.dispose()


def test_person_filters_stored_in_clear_are_indexed_and_sealed_as_the_service_starts(tmp_path):

    app, keys, engine = _application(tmp_path)
    try:
        personnummer = new_personnummer()
        row = {
            "id": "4e0c5a8e-8f5b-4a43-9d1e-2f4a3f1d6c11",
            "owner": "SE2321000032-R1",
            "owner_subject": "rs",
            "topic": "plan-changed",
            "source": "events",
            "person_system": PERSONNUMMER_SYSTEM,
            "person_value": personnummer,  # as sip_0006 and before stored it
            "person_sealed": None,
            "parts": None,
            "endpoint": "http://127.0.0.1:1/hook",
            "payload": "id-only",
            "heartbeat_seconds": None,
            "timeout_seconds": 5,
            "reason": "follows",
            "status": "active",
            "cursor": 0,
            "events_count": 0,
            "delivered_through": 0,
            "attempts": 0,
            "failing_since": None,
            "next_attempt_at": None,
            "heartbeat_due_at": None,
            "last_error": None,
            "version": 1,
            "last_updated": "2026-12-03T12:00:00Z",
        }
        with engine.begin() as connection:
            connection.execute(insert(subscriptions).values(**row))
        store = SubscriptionStore(engine)
        assert index_person_filters(store, keys) == 1
        assert index_person_filters(store, keys) == 0  # done once
        with engine.connect() as connection:
            stored = connection.execute(select(subscriptions)).one()._mapping
        assert personnummer not in str(dict(stored))
        converted = store.get(row["id"])
        assert filtered_person(keys, converted) == personnummer
        person = {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
        assert person_passes(keys, converted, person)
        assert not person_passes(keys, converted, {**person, "value": new_personnummer()})
    finally:
        app.close()
        engine.dispose()
