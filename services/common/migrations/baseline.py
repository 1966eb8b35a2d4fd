"""The schema as the services created it at start before migrations existed (up to
2026-11-25), frozen here so that the first migration of each service builds it on an empty
database and adopts it, unchanged and without touching a row, on a database that has it.

Frozen on purpose: these are copies, not imports, of the eventsourcing library's DDL (pinned at
9.5.6), the hash chain's (services/common/audit/chain.py) and the read models' tables. A later
change to any of them is a new migration; tests/test_migrations.py fails when the read models'
tables in the code and the migrated schema differ.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Connection


def create_event_store(events_table: str) -> None:
    """The library's application recorder's table and the hash chain beside it.

    On SQLite the library names its table `stored_events` whatever the application; on
    PostgreSQL after the application (`sipplans_events`)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _create_postgres_event_store(bind, events_table)
    else:
        for statement in _SQLITE_EVENT_STORE:
            op.execute(statement)


_SQLITE_EVENT_STORE = (
    "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INTEGER, "
    "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))",
    "CREATE TABLE IF NOT EXISTS event_chain (notification_id INTEGER PRIMARY KEY, "
    "originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, "
    "stream_hash TEXT NOT NULL, log_hash TEXT NOT NULL)",
)


def _create_postgres_event_store(bind: Connection, table: str) -> None:
    type_exists = bind.exec_driver_sql(
        "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = 'public' AND t.typname = 'stored_event_uuid'"
    ).first()
    statements = [
        f'CREATE TABLE IF NOT EXISTS "public"."{table}" (originator_id "uuid" NOT NULL, '
        "originator_version bigint NOT NULL, topic text, state bytea, "
        "notification_id bigserial, PRIMARY KEY (originator_id, originator_version)) "
        "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
        "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
        "autovacuum_analyze_scale_factor = 0.01)",
        *(
            []
            if type_exists
            else [
                'CREATE TYPE "public"."stored_event_uuid" AS (originator_id "uuid", '
                "originator_version bigint, topic text, state bytea)"
            ]
        ),
        f'CREATE UNIQUE INDEX IF NOT EXISTS "{table}_notification_id_idx" '
        f'ON "public"."{table}" (notification_id ASC)',
        # The library creates it whether or not it calls it (ENABLE_DB_FUNCTIONS is off).
        'CREATE OR REPLACE FUNCTION "public"."es_insert_events_uuid"'
        '(events "public"."stored_event_uuid"[]) RETURNS SETOF bigint LANGUAGE plpgsql AS '
        "$BODY$BEGIN    SET LOCAL lock_timeout = '5s';"
        f'    NOTIFY "{table}";    RETURN QUERY'
        f'    INSERT INTO "public"."{table}" AS t (    originator_id, originator_version, '
        "topic, state)    SELECT originator_id, originator_version, topic, state"
        "    FROM unnest(events)    RETURNING notification_id;END;$BODY$",
        f'CREATE TABLE IF NOT EXISTS "public"."{table}_chain" (notification_id bigint '
        "PRIMARY KEY, originator_id uuid NOT NULL, originator_version bigint NOT NULL, "
        "stream_hash text NOT NULL, log_hash text NOT NULL)",
        f'CREATE INDEX IF NOT EXISTS "{table}_chain_stream_idx" ON "public"."{table}_chain" '
        "(originator_id, originator_version)",
    ]
    for statement in statements:
        bind.exec_driver_sql(statement.replace("%", "%%"))


def create_tables(metadata: MetaData) -> None:
    """Creates the tables (with their indexes) a database does not have yet."""
    metadata.create_all(op.get_bind(), checkfirst=True)


def shared_read_models() -> MetaData:
    """Projection tracking and failures and the access log, as in both services."""
    metadata = MetaData()
    Table(
        "projection_tracking",
        metadata,
        Column("name", String(100), primary_key=True),
        Column("position", Integer, nullable=False),
    )
    Table(
        "projection_failures",
        metadata,
        Column("name", String(100), primary_key=True),
        Column("position", Integer, primary_key=True),
        Column("originator_id", String(36), nullable=False),
        Column("originator_version", Integer, nullable=False),
        Column("topic", String(300), nullable=False),
        Column("error_type", String(200), nullable=False),
        Column("error", String(500), nullable=False),
    )
    Table(
        "access_log",
        metadata,
        Column("record_id", String(36), primary_key=True),
        Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
        Column("interaction", String(40), nullable=False),
        Column("action", String(1), nullable=False),
        Column("outcome", String(2), nullable=False),
        Column("user_id", String(200), nullable=False, index=True),
        Column("user_role", String(20), nullable=False),
        Column("organization", String(64), index=True),
        Column("unit", String(64)),
        Column("custodian", String(64), index=True),
        Column("patient_system", String(200)),
        Column("patient_value", String(40), index=True),
        Column("entity", Text),
        Column("consents", Text, nullable=False),
        Column("query", Text),
        Column("detail", Text),
    )
    return metadata
