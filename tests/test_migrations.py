"""Schema migrations (`sip migrate`): a fresh database gets the schema, an old one is adopted
without losing a row, running it again changes nothing, and a service refuses any database not
at the code's head, naming the command that fixes it."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect, text

from services.cli import main as sip
from services.common.access_log_views import AccessLogIndex
from services.common.business_identifiers import claims_metadata
from services.common.migrations.runner import migrate_service
from services.common.migrations.schema_version import (
    SchemaNotCurrent,
    code_head,
    version_table,
)
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import personal_data_metadata
from services.common.projection import tracking_metadata
from services.common.subscriptions.store import subscriptions_metadata
from services.consent.projections import ConsentIndex
from services.sip.discharge.projections import StayIndex
from services.sip.messages.projections import MessageIndex
from services.sip.projections import PlanIndex
from tests.conftest import Backend, running_system
from tests.fhir_data import FHIR_JSON, MUNICIPALITY, care_plan, new_personnummer, run
from tests.servers import free_port

DEMO = Path(__file__).parent / "data" / "demo-2026-11-25"
# The read models the services created at start before migrations ...
READ_MODELS = {"sip": [PlanIndex, AccessLogIndex], "consent": [ConsentIndex, AccessLogIndex]}
# ... and those the migrations added since (sip_0008).
NEW_SIP_0008 = ("stay_index", "stay_parties", "message_index", "message_parties")
LATER_READ_MODELS = {"sip": [StayIndex, MessageIndex], "consent": []}
EVENT_TABLES = {
    "sqlite": {"stored_events", "event_chain"},
    "sip": {"sipplans_events", "sipplans_events_chain"},
    "consent": {"consents_events", "consents_events_chain"},
}


def _engine(backend: Backend, service: str):
    storage = storage_for(
        service, backend.database_urls[service], backend.data_dir, check_schema=False
    )
    return read_model_engine(storage)


def _schema(backend: Backend, service: str) -> dict[str, object]:
    """Every table with its columns and indexes: what a migration could change."""
    engine = _engine(backend, service)
    try:
        inspector = inspect(engine)
        return {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            )
            for table in sorted(inspector.get_table_names())
        }
    finally:
        engine.dispose()


def _unmigrated(backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if backend_kind == "sqlite":
        return Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None})
    pair, urls = request.getfixturevalue("postgres_pool").take()
    request.addfinalizer(lambda: request.getfixturevalue("postgres_pool").give_back(pair))
    return Backend("postgres", tmp_path / "data", urls)


@pytest.fixture
def unmigrated(backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _unmigrated(backend_kind, request, tmp_path)


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_a_service_refuses_a_database_that_was_never_migrated(unmigrated, service):
    from services.consent.api import create_app as consent_app
    from services.sip.api import create_app as sip_app

    create_app = sip_app if service == "sip" else consent_app
    with pytest.raises(SchemaNotCurrent, match=f"run `sip migrate --service {service}`"):
        create_app(unmigrated.settings(service))


def test_a_service_refuses_a_database_migrated_by_a_newer_version(backend):
    engine = _engine(backend, "sip")
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {version_table('sip')} SET version_num = 'sip_9999'"))
    engine.dispose()
    with pytest.raises(SchemaNotCurrent, match="sip_9999, which this code does not know"):
        storage_for("sip", backend.database_urls["sip"], backend.data_dir)


def test_a_service_refuses_a_database_older_than_its_code(backend, monkeypatch):
    from services.common.migrations import schema_version

    # The code moves on by one migration the database has not had yet.
    head = code_head("sip")
    later = f"sip_{int(head.removeprefix('sip_')) + 1:04d}"
    monkeypatch.setattr(schema_version, "code_head", lambda service: later)
    with pytest.raises(
        SchemaNotCurrent,
        match=rf"has schema {head}, older than this code's {later}: run `sip migrate",
    ):
        storage_for("sip", backend.database_urls["sip"], backend.data_dir)


def test_migrating_twice_changes_nothing(unmigrated, capsys):
    arguments = ["migrate", "--data-dir", str(unmigrated.data_dir)]
    for service, url in unmigrated.database_urls.items():
        arguments += [f"--{service}-database-url", url] if url else []
    assert sip(arguments) == 0
    first = {service: _schema(unmigrated, service) for service in ("sip", "consent")}
    assert f"unversioned -> {code_head('sip')}" in capsys.readouterr().out
    assert sip(arguments) == 0
    out = capsys.readouterr().out
    assert out.count("already at") == 2, out
    assert {service: _schema(unmigrated, service) for service in ("sip", "consent")} == first


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_the_migrated_schema_is_the_one_the_code_reads_and_writes(backend, service):
    """Changing a read model's table without a migration fails here."""
    code = MetaData()
    for model in [*READ_MODELS[service], *LATER_READ_MODELS[service]]:
        for table in [
            *model.metadata.tables.values(),
            *tracking_metadata.tables.values(),
            *claims_metadata.tables.values(),  # written with the events, read by searches
            *personal_data_metadata.tables.values(),  # sip_0006, consent_0004
        ]:
            if table.name not in code.tables:
                table.to_metadata(code)
    if service == "sip":  # the subscriptions (services/common/subscriptions/store.py)
        for table in subscriptions_metadata.tables.values():
            table.to_metadata(code)
    engine = _engine(backend, service)
    event_store = EVENT_TABLES["sqlite" if backend.name == "sqlite" else service]
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, kind, _: (
                        not (
                            kind == "table"
                            and (name in event_store or name == version_table(service))
                        )
                    ),
                },
            )
            assert compare_metadata(context, code) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("service", ["sip", "consent"])
def test_the_migrations_name_the_event_tables_the_library_uses(request, tmp_path, service):
    from services.ops.offline import SERVICES

    backend = _unmigrated("postgres", request, tmp_path)
    migrate_service(service, backend.database_urls[service], tmp_path)
    storage = storage_for(service, backend.database_urls[service], tmp_path)
    application = SERVICES[service][0](env=storage.event_store_env)
    try:
        assert {
            application.recorder.events_table_name,
            application.recorder.chain_table,
        } == EVENT_TABLES[service]
    finally:
        application.close()


def _counts(path: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(path) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        return {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def _tracked(path: Path) -> set[str]:
    """The projections with a tracking row."""
    import sqlite3

    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM projection_tracking")}


def _pending_invitations(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT count(*) FROM plan_organizations WHERE role = 'invitation-pending'"
        ).fetchone()[0]


def test_a_data_folder_of_an_earlier_release_is_adopted_without_losing_a_row(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(DEMO, data)
    before = {service: _counts(data / f"{service}.sqlite") for service in ("sip", "consent")}
    before_names = {service: _tracked(data / f"{service}.sqlite") for service in ("sip", "consent")}
    with pytest.raises(SchemaNotCurrent, match="never migrated"):
        storage_for("sip", None, data)
    assert sip(["audit", "verify", "--data-dir", str(data)]) == 1
    assert "run `sip migrate --service sip`" in capsys.readouterr().err
    assert sip(["migrate", "--data-dir", str(data)]) == 0
    for service in ("sip", "consent"):
        after = _counts(data / f"{service}.sqlite")
        expected = {
            **before[service],
            "projection_failures": 0,  # tables the old folder lacked
            "business_identifiers": 0,
            version_table(service): 1,
            "personal_data_keys": 0,  # sip_0006, consent_0004
            "personal_data_erasures": 1,  # sip_0009, consent_0006: its one row
        }
        if service == "sip":
            expected |= {table: 0 for table in subscriptions_metadata.tables}  # sip_0004
        # sip_0007 and consent_0005 empty the read models that held personnummer, rebuilt
        # from the log with blind indexes on their first catch-up (their tracking rows go).
        emptied = READ_MODELS[service]
        for model in emptied:
            expected |= {table: 0 for table in model.metadata.tables}
        expected["projection_tracking"] -= len(before_names[service] & {m.name for m in emptied})
        if service == "sip":  # sip_0008: the stays' and messages' read models, empty
            expected |= {table: 0 for table in NEW_SIP_0008}
        assert after == expected
        storage_for(service, None, data)  # now accepted
    assert sip(["audit", "verify", "--data-dir", str(data)]) == 0
    # The rows the migrations wrote are those the read models' code writes.
    assert sip(["projections", "rebuild", "--check", "--data-dir", str(data)]) == 0
    assert sip(["projections", "rebuild", "--data-dir", str(data)]) == 0
    assert _counts(data / "sip.sqlite")["plan_index"] == before["sip"]["plan_index"]
    # sip_0002's rows of the invitations pending then are the code's too.
    assert _pending_invitations(data / "sip.sqlite") > 0


def test_sip_0002_gives_the_plans_indexed_before_it_their_pending_invitations(backend):
    """What the plan index of the release before held: no `invitation-pending` rows (no
    invitation could be accepted then). The migration writes those the code writes now:
    the invited organisations of open plans, not the starting ones, none for a closed plan."""
    with running_system(backend) as system:
        plans = []
        for _ in range(2):
            body = care_plan(new_personnummer())
            created = system.sip.post("/fhir/CarePlan", json=body, headers=FHIR_JSON)
            plans.append(created.json()["id"])
            invited = run(
                system.sip, plans[-1], "invite-organization", organization=MUNICIPALITY,
                kind="municipality",
            )  # fmt: skip
            assert invited.status_code == 200, invited.text
        open_plan, closed_plan = plans
        closed = run(system.sip, closed_plan, "close", reason="person-withdrew")
        assert closed.status_code == 200, closed.text
        assert system.sip.get("/fhir/CarePlan").status_code == 200  # the index caught up
    engine = _engine(backend, "sip")
    pending = text("SELECT plan_id, hsa_id FROM plan_organizations WHERE role = :role")
    try:
        with engine.begin() as connection:
            written = set(connection.execute(pending, {"role": "invitation-pending"}))
            assert written == {(open_plan, MUNICIPALITY)}
            connection.execute(
                text("DELETE FROM plan_organizations WHERE role = 'invitation-pending'")
            )
            connection.execute(text("DROP TABLE business_identifiers"))  # from sip_0003 on
            for table in subscriptions_metadata.tables:  # from sip_0004 on
                connection.execute(text(f"DROP TABLE {table}"))
            connection.execute(text("DROP TABLE personal_data_keys"))  # from sip_0006 on
            for table in NEW_SIP_0008:  # from sip_0008 on
                connection.execute(text(f"DROP TABLE {table}"))
            connection.execute(text(f"UPDATE {version_table('sip')} SET version_num = 'sip_0001'"))
        # Up to sip_0006: sip_0007 empties the plan index for a rebuild (blind indexes).
        migrate_service("sip", backend.database_urls["sip"], backend.data_dir, "sip_0006")
        with engine.connect() as connection:
            assert set(connection.execute(pending, {"role": "invitation-pending"})) == written
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_postgres_database_created_by_the_old_start_up_code_is_adopted(request, tmp_path):
    """What the services did at start before migrations: the library created its tables and
    each read model `create_all`; events written then survive the adoption."""
    from services.sip.application import SipPlans

    backend = _unmigrated("postgres", request, tmp_path)
    storage = storage_for("sip", backend.database_urls["sip"], tmp_path, check_schema=False)
    plans = SipPlans(env={**storage.event_store_env, "CREATE_TABLE": "true"})
    engine = read_model_engine(storage)
    for model in READ_MODELS["sip"]:
        tracking_metadata.create_all(engine)
        model.metadata.create_all(engine)
    plans.record_access(
        interaction="read", action="R", outcome="0", patient=None, custodian=None, entity=None,
        consents=[], query=None, detail=None, recorded_at=datetime.now(UTC),
        actor={"subject": "u", "role": "professional", "organization": None, "unit": None},
    )  # fmt: skip
    plans.close()
    migrate_service("sip", backend.database_urls["sip"], tmp_path)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM sipplans_events")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM sipplans_events_chain")).scalar() == 1
    engine.dispose()
    assert sip(["audit", "verify", "--service", "sip", "--data-dir", str(tmp_path),
                "--sip-database-url", backend.database_urls["sip"]]) == 0  # fmt: skip
    storage_for("sip", backend.database_urls["sip"], tmp_path)  # at the code's head: accepted


def test_a_replica_process_on_an_unmigrated_database_ends_with_one_line(tmp_path):
    """As systemd would start it without its ExecStartPre: exit status 1, the reason and the
    command to run in one line, no traceback in the journal."""
    from services.cli import service_command

    environment = {**os.environ, "SIP_DATA_DIR": str(tmp_path / "data")}
    for variable in ("SIP_DATABASE_URL", "CONSENT_DATABASE_URL"):
        environment.pop(variable, None)
    started = subprocess.run(
        service_command("services.consent.api", "127.0.0.1", free_port()),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 1
    assert "Traceback" not in started.stderr
    assert started.stderr.strip().splitlines()[-1].startswith("not started: ")
    assert "run `sip migrate --service consent`" in started.stderr
