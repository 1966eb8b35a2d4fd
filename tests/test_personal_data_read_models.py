"""No personnummer in clear anywhere the services store (issue 16, docs/decisions/0007): the
read models keep the person's blind index, the access records and the subscriptions' person
filters are sealed, and the API still finds the person by their number as before.

After a realistic run (plans, consents, searches by personnummer in each way a client writes
one, a search by a number that matched nobody, a subscription filtered on the person), every
table of both databases is read (and on SQLite every byte of the database files) for the
number in each written form and for a phrase of the plan's free text."""

from __future__ import annotations

import base64
from pathlib import Path

from sqlalchemy import inspect, select, text

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from contracts.subscription_topics import PLAN_CHANGED
from services.common.persistence import read_model_engine, storage_for
from tests.conftest import running_system
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
