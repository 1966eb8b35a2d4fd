"""A hash chain over every stored event, written in the same transaction as the events.

Each event gets two SHA-256 hashes: one chained to the previous event of the same aggregate
(its stream) and one chained to the previous event of the whole log. Changing, removing or
reordering a stored event breaks both chains from that event on; cutting off the newest
events is caught by comparing with a signed checkpoint (`checkpoints.py`). The same
transaction claims business identifiers and inserts or checks the data keys the events are
sealed under (personal_data/in_write.py).

The recorders extend the eventsourcing library's native ones through its
APPLICATION_RECORDER_TOPIC setting: the SQLite one writes inside the library's write
transaction, the PostgreSQL one inside the transaction that holds the library's exclusive
table lock, so "the previous event of the log" is always well defined. Both hooks are
private methods of the library, hence its exact pin (docs/decisions/0003).

The services' chain tables come from their migrations (services/common/migrations, which
freeze this DDL); the create statements below run only where the library is let create its
tables itself (CREATE_TABLE, off for the services).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import local
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
)
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from services.common.audit.group_commit import GroupCommit, Save
from services.common.file_lock import held
from services.common.personal_data.in_write import DataKeyChecks, check_data_keys
from services.common.wal_checkpoints import checkpointing, defer_checkpoints

GENESIS = bytes(32)
# Business identifiers claimed by a creation (services/common/business_identifiers.py), passed
# as `Application.save(..., business_identifiers=[...])` and inserted with the events, so a
# claimed one fails the whole write on the table's primary key.
CLAIMS_KEYWORD = "business_identifiers"
CLAIM_INSERT = (
    "INSERT INTO business_identifiers (resource_type, organization, system, value, "
    "resource_id) VALUES (%s, %s, %s, %s, %s)"
)


def claim_values(claim: dict[str, str]) -> tuple[str, ...]:
    return tuple(
        claim[name] for name in ("resource_type", "organization", "system", "value", "resource_id")
    )


def chain_hash(
    previous: bytes, originator_id: UUID, version: int, topic: str, state: bytes
) -> bytes:
    digest = hashlib.sha256(previous)
    for part in (str(originator_id).encode(), str(version).encode(), topic.encode(), state):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


@dataclass(frozen=True)
class ChainLink:
    notification_id: int
    originator_id: UUID
    originator_version: int
    stream_hash: bytes
    log_hash: bytes


def link_events(
    stored_events: Sequence[StoredEvent],
    notification_ids: Sequence[int],
    log_head: bytes,
    stream_head: Any,
) -> list[ChainLink]:
    """Links for newly inserted events; `stream_head(originator_id)` gives a stream's last hash."""
    links = []
    stream_heads: dict[UUID, bytes] = {}
    for stored, notification_id in zip(stored_events, notification_ids, strict=True):
        originator_id = UUID(str(stored.originator_id))
        if originator_id not in stream_heads:
            stream_heads[originator_id] = (
                GENESIS if stored.originator_version == 1 else stream_head(originator_id)
            )
        fields = (originator_id, stored.originator_version, stored.topic, stored.state)
        stream_hash = chain_hash(stream_heads[originator_id], *fields)
        log_head = chain_hash(log_head, *fields)
        stream_heads[originator_id] = stream_hash
        links.append(
            ChainLink(
                notification_id, originator_id, stored.originator_version, stream_hash, log_head
            )
        )
    return links


# Statements each SQLite connection keeps compiled. The library opens its connections with
# `cached_statements=True`, a cache of one statement: a write's statements alternate (the
# events, the chain's heads and links, the claims, the data keys), so every one was compiled
# again on every write, about a tenth of a write's CPU time (bench/personal_data.py).
STATEMENTS_CACHED = 128


def _connection_caching_statements(pool: SQLiteConnectionPool) -> SQLiteConnection:
    """A file database's connection as the library's `SQLiteConnectionPool._create_connection`
    (eventsourcing 9.5.6, pinned) opens it, with a cache of `STATEMENTS_CACHED` statements."""
    try:
        connection = sqlite3.connect(
            database=pool.db_name,
            uri=True,
            check_same_thread=False,
            isolation_level=None,  # autocommit: the library begins its transactions itself
            cached_statements=STATEMENTS_CACHED,
            timeout=pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
        )
    except (sqlite3.Error, TypeError) as error:
        raise InterfaceError(error) from error
    if not pool.is_journal_mode_wal:
        if connection.execute("PRAGMA journal_mode;").fetchone()[0].lower() != "wal":
            connection.execute("PRAGMA journal_mode=WAL;")
            pool.journal_mode_was_changed_to_wal = True
        pool.is_journal_mode_wal = True
    connection.row_factory = sqlite3.Row
    return SQLiteConnection(sqlite_conn=connection, max_age=pool.max_age)


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    chain_table = "event_chain"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_commit = GroupCommit(self._write_batch)
        pool = self.datastore.pool
        if not pool.is_sqlite_memory_mode:
            # A commit syncs the log only; a background thread checkpoints, started with
            # this process's first write (services/common/wal_checkpoints.py).
            def created() -> Any:
                connection = _connection_caching_statements(pool)
                defer_checkpoints(connection._sqlite_conn)
                return connection

            pool._create_connection = created  # type: ignore[method-assign]

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self.group_commit.save(stored_events, **kwargs)

    def _write_batch(self, batch: list[Save]) -> None:
        pool = self.datastore.pool
        if pool.is_sqlite_memory_mode:
            self._write_batch_now(batch)
            return
        checkpointing(pool.db_name)
        # Server processes on one file (`--workers`) take turns here, woken at once, rather
        # than in SQLite's lock, where a waiting writer sleeps (services/common/file_lock.py).
        with held(f"{pool.db_name}.write.lock"):
            self._write_batch_now(batch)

    def _write_batch_now(self, batch: list[Save]) -> None:
        if len(batch) == 1:  # alone: the library's own transaction, as without group commit
            batch[0].notification_ids = super().insert_events(batch[0].events, **batch[0].kwargs)
            return
        with self.datastore.transaction(commit=True) as c:
            for save in batch:
                c.execute("SAVEPOINT save")
                try:
                    save.notification_ids = self._insert_events(c, save.events, **save.kwargs)
                except sqlite3.IntegrityError as refused:  # this save's alone (its version taken)
                    c.execute("ROLLBACK TO save")
                    save.error = IntegrityError(refused)
                c.execute("RELEASE save")

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.chain_table} ("
            "notification_id INTEGER PRIMARY KEY, originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, stream_hash TEXT NOT NULL, "
            "log_hash TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {self.chain_table}_stream_idx ON {self.chain_table} "
            "(originator_id, originator_version)",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        if not stored_events or not notification_ids:
            return notification_ids
        c.execute(f"SELECT log_hash FROM {self.chain_table} ORDER BY notification_id DESC LIMIT 1")
        row = c.fetchone()
        log_head = bytes.fromhex(row[0]) if row else GENESIS

        def stream_head(originator_id: UUID) -> bytes:
            c.execute(
                f"SELECT stream_hash FROM {self.chain_table} WHERE originator_id = ? "
                "ORDER BY originator_version DESC LIMIT 1",
                (str(originator_id),),
            )
            found = c.fetchone()
            return bytes.fromhex(found[0]) if found else GENESIS

        for link in link_events(stored_events, notification_ids, log_head, stream_head):
            c.execute(
                f"INSERT INTO {self.chain_table} VALUES (?, ?, ?, ?, ?)",
                (link.notification_id, str(link.originator_id), link.originator_version,
                 link.stream_hash.hex(), link.log_hash.hex()),
            )  # fmt: skip
        for claim in kwargs.get(CLAIMS_KEYWORD) or ():
            c.execute(CLAIM_INSERT.replace("%s", "?"), claim_values(claim))

        def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            c.execute(sql.replace("%s", "?"), params)
            return list(c.fetchall())

        check_data_keys(stored_events, run)  # SQLite: this write holds the database's lock
        return notification_ids


class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_commit = GroupCommit(self._write_batch)
        # The data-key checks a write sent, until its events are in (each thread its own).
        self._key_checks = local()
        self.chain_table = f"{self.events_table_name}_chain"
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
                "notification_id bigint PRIMARY KEY, originator_id uuid NOT NULL, "
                "originator_version bigint NOT NULL, stream_hash text NOT NULL, "
                "log_hash text NOT NULL)"
            ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.chain_table))
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} "
                "(originator_id, originator_version)"
            ).format(
                index=Identifier(f"{self.chain_table}_stream_idx"),
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.chain_table),
            )
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self.group_commit.save(stored_events, **kwargs)

    def _write_batch(self, batch: list[Save]) -> None:
        if len(batch) == 1:  # alone: the library's own transaction, as without group commit
            batch[0].notification_ids = super().insert_events(batch[0].events, **batch[0].kwargs)
            return
        self._write_shared(batch)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _write_shared(self, batch: list[Save]) -> None:
        """The library's insert for several saves: one transaction, one table lock, a
        savepoint per save (retried as a whole, as the library retries its insert)."""
        for save in batch:
            save.notification_ids, save.error = None, None
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.cursor() as curs:
                self._lock_table(curs)
                self._notify_channel(curs)
            for save in batch:
                if not save.events:
                    continue
                try:
                    with conn.transaction(), conn.cursor() as curs:  # a savepoint
                        self._insert_events(curs, save.events, **save.kwargs)
                        PostgresAggregateRecorder._insert_stored_events(self, curs, save.events)
                        save.notification_ids = self._fetch_ids_after_insert_events(
                            curs, save.events, **save.kwargs
                        )
                except psycopg.IntegrityError as refused:  # this save's alone
                    save.error = IntegrityError(str(refused))

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # Runs inside the insert's transaction, after the library's exclusive table lock.
        checks: DataKeyChecks | None = getattr(self._key_checks, "sent", None)
        self._key_checks.sent = None
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if not stored_events or not notification_ids:
            return notification_ids
        table = SQL("{schema}.{table}").format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.chain_table)
        )
        curs.execute(
            SQL("SELECT log_hash FROM {t} ORDER BY notification_id DESC LIMIT 1").format(t=table)
        )
        row = curs.fetchone()
        log_head = bytes.fromhex(row["log_hash"]) if row else GENESIS

        def stream_head(originator_id: UUID) -> bytes:
            curs.execute(
                SQL(
                    "SELECT stream_hash FROM {t} WHERE originator_id = %s "
                    "ORDER BY originator_version DESC LIMIT 1"
                ).format(t=table),
                (originator_id,),
            )
            found = curs.fetchone()
            return bytes.fromhex(found["stream_hash"]) if found else GENESIS

        links = link_events(stored_events, notification_ids, log_head, stream_head)
        curs.executemany(
            SQL("INSERT INTO {t} VALUES (%s, %s, %s, %s, %s)").format(t=table),
            [
                (link.notification_id, link.originator_id, link.originator_version,
                 link.stream_hash.hex(), link.log_hash.hex())
                for link in links
            ],
        )  # fmt: skip
        for claim in kwargs.get(CLAIMS_KEYWORD) or ():
            # In the same transaction as the events: a claimed identifier rolls them back.
            curs.execute(
                SQL(CLAIM_INSERT.replace("business_identifiers", "{t}")).format(
                    t=SQL("{schema}.business_identifiers").format(
                        schema=Identifier(self.datastore.schema)
                    )
                ),
                claim_values(claim),
            )

        def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return self._send_to_keys(curs.connection, sql, params)()

        def abort(reason: str) -> None:
            # The library commits after an exception of ours unless the database failed the
            # transaction: make it fail, so the events and the keys are rolled back.
            with contextlib.suppress(psycopg.Error):
                curs.execute("SELECT CAST(%s AS integer)", (f"rolled back: {reason}",))
                curs.fetchall()

        if checks is not None:
            checks.judge(run, abort)
        return notification_ids

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """Sends the data-key checks first, as the library sends what it can before its
        events' insert: their answers come back in the insert's round trip (pipeline mode),
        and are judged once the events are in (`_fetch_ids_after_insert_events`). A share
        lock on each key used: an erasure waits for this write, then erases it too."""
        super()._insert_events(curs, stored_events, **kwargs)
        connection = curs.connection
        self._key_checks.sent = DataKeyChecks(
            stored_events,
            lambda sql, params: self._send_to_keys(connection, sql, params),
            lock=" FOR SHARE",
        )

    def _send_to_keys(
        self, connection: Any, sql: str, params: tuple[Any, ...]
    ) -> Callable[[], list[tuple[Any, ...]]]:
        """Sends `sql` on a cursor of its own (the library closes its own before it fetches)
        and gives the rows when asked; an insert returns rows only with RETURNING."""
        cursor = connection.cursor()
        cursor.execute(
            SQL(sql.replace("personal_data_keys", "{t}")).format(  # type: ignore[arg-type]
                t=SQL("{schema}.personal_data_keys").format(
                    schema=Identifier(self.datastore.schema)
                )
            ),
            params,
        )
        returns = sql[:6] == "SELECT" or " RETURNING " in sql

        def rows() -> list[tuple[Any, ...]]:
            # A fetch makes the pipeline hand back this statement's rows, if not yet back.
            with cursor:
                return [tuple(row.values()) for row in cursor.fetchall()] if returns else []

        return rows


RECORDER_TOPICS = {
    "eventsourcing.sqlite": f"{__name__}:ChainedSQLiteApplicationRecorder",
    "eventsourcing.postgres": f"{__name__}:ChainedPostgresApplicationRecorder",
}
