"""Where a service keeps its events and read models.

Embedded default: one SQLite file per service under a data folder. Production: one PostgreSQL
database per service, named by a URL. The event store uses the eventsourcing library's native
recorders; read models use SQLAlchemy on the same database (docs/decisions/0001). The schema
of both comes from the versioned migrations (services/common/migrations, `sip migrate`): the
library is told not to create tables, and a service refuses a database not at the code's head.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url

from services.common.audit.chain import RECORDER_TOPICS
from services.common.data_dir import DEFAULT_DATA_DIR, data_dir_from_env, private_file
from services.common.migrations.schema_version import MIGRATED_SERVICES, require_current_schema
from services.common.wal_checkpoints import defer_checkpoints

__all__ = ["DEFAULT_DATA_DIR", "data_dir_from_env"]  # kept here for the callers of old


@dataclass(frozen=True)
class Storage:
    """Storage of one service: an event-store environment and a read-model URL."""

    service: str
    event_store_env: dict[str, str]
    read_model_url: URL
    description: str

    @property
    def is_postgres(self) -> bool:
        return self.read_model_url.get_backend_name() == "postgresql"


def pool_sizes_from_env() -> tuple[int, int]:
    """Connections each of a replica's two pools (event store, read models) keeps and may add:
    SIP_DB_POOL_SIZE (5) and SIP_DB_MAX_OVERFLOW (10), sized against PostgreSQL's
    max_connections (deploy/README.md, "Connection pools")."""
    return (
        int(os.environ.get("SIP_DB_POOL_SIZE") or 5),
        int(os.environ.get("SIP_DB_MAX_OVERFLOW") or 10),
    )


# A write reads its aggregate twice (the access check, then the command) and each read
# replayed every event of it. The library's cache keeps the most recently used aggregates
# and brings a kept one up to date on every read with the events stored since (fast-forward:
# one indexed query), so a read costs the new events, not the whole history, and never misses
# what another replica wrote; a write on a copy that is stale by the time it is saved is still
# refused by the event store's unique (aggregate, version) key. Each read gets a deep copy, so
# a refused command leaves the kept aggregate as stored.
AGGREGATE_CACHE = {
    "AGGREGATE_CACHE_MAXSIZE": "1000",
    "AGGREGATE_CACHE_FASTFORWARD": "y",
    "DEEPCOPY_FROM_AGGREGATE_CACHE": "y",
}


def storage_for(
    service: str, database_url: str | None, data_dir: Path, *, check_schema: bool = True
) -> Storage:
    """A service's storage; unless told not to (by `sip migrate` itself), only once its
    database is at the code's migration head: raises SchemaNotCurrent, naming the command to
    run, before anything opens the event store."""
    storage = _storage(service, database_url, data_dir)
    if check_schema and service in MIGRATED_SERVICES:
        engine = read_model_engine(storage)
        try:
            require_current_schema(service, engine, storage.description)
        finally:
            engine.dispose()
    return storage


def _storage(service: str, database_url: str | None, data_dir: Path) -> Storage:
    if database_url:
        return _postgres_storage(service, database_url)
    # Created here, 0600 in a 0700 folder, before the event store or SQLAlchemy opens it
    # (either would create it with the umask's mode): it holds personal data.
    path = private_file(data_dir.resolve() / f"{service}.sqlite")
    return Storage(
        service=service,
        event_store_env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "CREATE_TABLE": "false",
            "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": RECORDER_TOPICS["eventsourcing.sqlite"],
            **AGGREGATE_CACHE,
        },
        read_model_url=URL.create("sqlite+pysqlite", database=str(path)),
        description=f"sqlite:{path}",
    )


def eventsourcing_postgres_env(url: URL) -> dict[str, str]:
    """The eventsourcing library's PostgreSQL recorder pointed at the database of `url`."""
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.database or "",
        "POSTGRES_HOST": url.host or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
    }


def _postgres_storage(service: str, database_url: str) -> Storage:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql" or not url.database:
        raise ValueError("a database URL looks like postgresql://user:password@host:5432/dbname")
    url = url.set(drivername="postgresql+psycopg")
    return Storage(
        service=service,
        event_store_env={
            **eventsourcing_postgres_env(url),
            "CREATE_TABLE": "false",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": str(pool_sizes_from_env()[0]),
            "POSTGRES_MAX_OVERFLOW": str(pool_sizes_from_env()[1]),
            "POSTGRES_LOCK_TIMEOUT": "5",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": RECORDER_TOPICS["eventsourcing.postgres"],
            **AGGREGATE_CACHE,
        },
        read_model_url=url,
        description=url.render_as_string(hide_password=True),
    )


def maintenance_conninfo(url: URL, connect_timeout: int = 5) -> str:
    """The server's `postgres` database, where databases are created and dropped."""
    return psycopg.conninfo.make_conninfo(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        dbname="postgres",
        connect_timeout=connect_timeout,
    )


def read_model_engine(storage: Storage) -> Engine:
    if storage.is_postgres:
        size, overflow = pool_sizes_from_env()
        return create_engine(
            storage.read_model_url, pool_pre_ping=True, pool_size=size, max_overflow=overflow
        )
    engine = create_engine(storage.read_model_url, connect_args={"timeout": 10})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
        # SQLAlchemy, not the sqlite3 module, decides when transactions begin (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        # What a connection deletes or overwrites is zeroed in the file, not left in free
        # pages: an erased key's wrapped copy and an erased person's read-model rows would
        # otherwise stay readable in the bytes (docs/decisions/0007, "Leftovers in the files").
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()
        defer_checkpoints(dbapi_connection)  # the event store's thread checkpoints the file

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Any) -> None:
        # A projection reads its position and then writes. In WAL mode a deferred transaction
        # that read before the event store's last commit cannot become a writer (SQLITE_BUSY
        # at once, no waiting), so writers take the write lock up front.
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


SQLITE_IMMEDIATE = "sqlite_begin_immediate"
