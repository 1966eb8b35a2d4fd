"""`sip migrate`: brings a service's database to the code's head, safely from many replicas.

On PostgreSQL the database itself is created under an advisory lock on the server's
maintenance database (a racing replica's CREATE DATABASE fails with DuplicateDatabase or, in
the catalogue's unique index, UniqueViolation: both mean "it exists now"), and the migrations
run in one transaction that first takes an advisory lock in the service's database: a second
`sip migrate` waits, then finds the version at head and does nothing. On SQLite the
transaction begins IMMEDIATE, which serialises writers to the file the same way.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from psycopg import sql
from sqlalchemy.engine import URL

from services.common.migrations.schema_version import history, version_table
from services.common.persistence import (
    SQLITE_IMMEDIATE,
    Storage,
    maintenance_conninfo,
    read_model_engine,
    storage_for,
)

# Advisory-lock keys: one namespace for this project, the database name hashed into the other.
_LOCK_NAMESPACE = 0x5_1919


@dataclass(frozen=True)
class Migrated:
    service: str
    where: str
    before: str | None
    after: str

    def __str__(self) -> str:
        if self.before == self.after:
            return f"{self.service}: {self.where} already at {self.after}"
        return (
            f"{self.service}: {self.where} migrated {self.before or 'unversioned'} -> {self.after}"
        )


def migrate_service(
    service: str, database_url: str | None, data_dir: Path, target: str = "heads"
) -> Migrated:
    """To the code's head; `target`, a revision before it (the tests of one migration)."""
    storage = storage_for(service, database_url, data_dir, check_schema=False)
    if storage.is_postgres:
        ensure_postgres_database(storage.read_model_url)
    return _upgrade(service, storage, target)


def _upgrade(service: str, storage: Storage, target: str = "heads") -> Migrated:
    script = history(service)
    engine = read_model_engine(storage)
    revisions: dict[str, str | None] = {}

    def upgrade(revision: Any, _: Any) -> Any:
        revisions["before"] = revision[0] if revision else None
        # What alembic's own `command.upgrade` runs; called here to run without an env.py.
        return script._upgrade_revs(target, revision)

    try:
        with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
            if storage.is_postgres:
                connection.exec_driver_sql(
                    "SELECT pg_advisory_xact_lock(%s, %s)",
                    (_LOCK_NAMESPACE, _database_key(storage.read_model_url)),
                )
            with EnvironmentContext(Config(), script, fn=upgrade) as environment:
                environment.configure(connection=connection, version_table=version_table(service))
                with environment.begin_transaction():
                    environment.run_migrations()
    finally:
        engine.dispose()
    head = (script.get_current_head() or "") if target == "heads" else target
    return Migrated(service, storage.description, revisions.get("before"), head)


def _database_key(url: URL) -> int:
    return zlib.crc32((url.database or "").encode()) - 2**31


def ensure_postgres_database(url: URL) -> None:
    """Creates the service's database where it does not exist; safe from racing replicas."""
    with psycopg.connect(maintenance_conninfo(url), autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_NAMESPACE, _database_key(url)))
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)
        ).fetchone()
        if not exists:
            # Still possible from a `sip migrate` of an older version that takes no lock.
            with contextlib.suppress(
                psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation
            ):
                connection.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database or ""))
                )
        # Closing the connection releases the lock.
