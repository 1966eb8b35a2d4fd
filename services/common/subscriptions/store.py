"""Where subscriptions, their numbered notifications and the time-driven happenings live.

A subscription is configuration of a record system, not a record about a person, so it is a
row (sip migration 0004), not an event-sourced aggregate. Its `cursor` is how far into its
source (the event log, or the time-driven happenings) it has been judged; `events_count` the
notifications numbered for it; `delivered_through` the ones its endpoint acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from services.common.file_lock import held
from services.common.persistence import SQLITE_IMMEDIATE

subscriptions_metadata = MetaData()
subscriptions = Table(
    "subscriptions",
    subscriptions_metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(256), nullable=False, index=True),
    Column("owner_subject", String(256), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("person_system", String(200)),
    # The person filter's blind index, and its identifier sealed (person_filter.py).
    Column("person_value", String(64)),
    Column("person_sealed", Text),
    Column("parts", String(200)),
    Column("endpoint", String(2048), nullable=False),
    Column("payload", String(20), nullable=False),
    Column("heartbeat_seconds", Integer),
    Column("timeout_seconds", Integer, nullable=False),
    Column("reason", String(1024), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("cursor", BigInteger, nullable=False),
    Column("events_count", BigInteger, nullable=False),
    Column("delivered_through", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failing_since", Float),
    Column("next_attempt_at", Float),
    Column("heartbeat_due_at", Float),
    Column("last_error", String(500)),
    Column("version", Integer, nullable=False),
    Column("last_updated", String(40), nullable=False),
)
subscription_notifications = Table(
    "subscription_notifications",
    subscriptions_metadata,
    Column("subscription_id", String(36), primary_key=True),
    Column("event_number", BigInteger, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("topic", String(64), nullable=False),
    Column("focus_type", String(40), nullable=False),
    Column("focus_id", String(36), nullable=False),
    Column("part", String(40)),
    Column("occurred_at", String(40), nullable=False),
)
timed_happenings = Table(
    "subscription_timed_happenings",
    subscriptions_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(64), nullable=False),
    Column("aggregate_id", String(36), nullable=False),
    Column("key", String(64), nullable=False),
    Column("noted_at", String(40), nullable=False),
    UniqueConstraint("topic", "aggregate_id", "key", name="uq_timed_happening_once"),
)


@dataclass(frozen=True)
class SubscriptionRow:
    id: str
    owner: str
    owner_subject: str
    topic: str
    source: str  # "events" (the event log) or "timed" (time-driven happenings)
    person_system: str | None
    person_value: str | None  # the blind index (person_filter.py)
    person_sealed: str | None
    parts: str | None  # comma-separated, None: every part
    endpoint: str
    payload: str  # id-only | full-resource
    heartbeat_seconds: int | None
    timeout_seconds: int
    reason: str
    status: str  # requested | active | error | off
    cursor: int
    events_count: int
    delivered_through: int
    attempts: int
    failing_since: float | None
    next_attempt_at: float | None
    heartbeat_due_at: float | None
    last_error: str | None
    version: int
    last_updated: str

    @property
    def pending(self) -> bool:
        return self.delivered_through < self.events_count

    def with_(self, **changes: Any) -> SubscriptionRow:
        return replace(self, **changes)


@dataclass(frozen=True)
class NotificationRow:
    subscription_id: str
    event_number: int
    position: int
    topic: str
    focus_type: str
    focus_id: str
    part: str | None
    occurred_at: str


@dataclass(frozen=True)
class Happening:
    """A time-driven happening (a follow-up that became overdue), noted once."""

    id: int
    topic: str
    aggregate_id: str
    key: str
    noted_at: str


# What the worker changes of a row; the rest is the owner's (and changes through the API).
WORKER_COLUMNS = (
    "status", "cursor", "events_count", "delivered_through", "attempts", "failing_since",
    "next_attempt_at", "heartbeat_due_at", "last_error",
)  # fmt: skip


def _row(mapping: Any) -> SubscriptionRow:
    return SubscriptionRow(**{f.name: mapping[f.name] for f in fields(SubscriptionRow)})


class SubscriptionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._writer = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        # SQLite: one claim at a time on the database file, across this process's threads
        # and the processes of `sip up --workers N` (a lock on a file beside the database,
        # services/common/file_lock.py): without it two workers would claim the same
        # subscriptions and each deliver their notifications.
        self._claiming = threading.Lock()
        database = None if self.postgres else engine.url.database
        in_file = database not in (None, "", ":memory:")
        self._lock_path = f"{database}.subscriptions.lock" if in_file else None

    # The owner's side, through the API.

    def add(self, row: SubscriptionRow) -> None:
        with self._writer.begin() as connection:
            connection.execute(insert(subscriptions).values(**row.__dict__))

    def get(self, subscription_id: str) -> SubscriptionRow | None:
        with self.engine.connect() as connection:
            found = connection.execute(
                select(subscriptions).where(subscriptions.c.id == subscription_id)
            ).mappings()
            first = found.first()
        return _row(first) if first else None

    def owned_by(self, owner: str) -> list[SubscriptionRow]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(subscriptions)
                .where(subscriptions.c.owner == owner)
                .order_by(subscriptions.c.id)
            ).mappings()
            return [_row(row) for row in rows]

    def replace_settings(self, row: SubscriptionRow) -> None:
        """The owner's update: every column but the worker's progress."""
        owned = {k: v for k, v in row.__dict__.items() if k not in WORKER_COLUMNS[1:]}
        with self._owner_change(), self._writer.begin() as connection:
            connection.execute(
                update(subscriptions).where(subscriptions.c.id == row.id).values(**owned)
            )

    def remove(self, subscription_id: str) -> None:
        with self._owner_change(), self._writer.begin() as connection:
            connection.execute(delete(subscriptions).where(subscriptions.c.id == subscription_id))
            connection.execute(
                delete(subscription_notifications).where(
                    subscription_notifications.c.subscription_id == subscription_id
                )
            )

    def end(self, subscription_id: str, reason: str, at: str) -> None:
        """Turns a subscription off for good, with the reason its owner is shown, and drops
        its person filter (the retention run, when the person's `access` key is erased):
        under the owner's lock, so the worker's progress does not turn it on again."""
        with self._owner_change(), self._writer.begin() as connection:
            connection.execute(
                update(subscriptions)
                .where(subscriptions.c.id == subscription_id)
                .values(
                    status="off",
                    last_error=reason,
                    next_attempt_at=None,
                    person_value=None,
                    person_sealed=None,
                    version=subscriptions.c.version + 1,
                    last_updated=at,
                )
            )

    @contextmanager
    def _owner_change(self) -> Iterator[None]:
        """On SQLite the worker's claim is this process's lock, so an owner's change waits for
        it rather than be overwritten by the progress it writes; PostgreSQL's row lock does
        the same there."""
        if self.postgres:
            yield
            return
        with self._sqlite_claim():
            yield

    @contextmanager
    def _sqlite_claim(self) -> Iterator[None]:
        if self._lock_path is None:  # a database in memory is this process's alone
            with self._claiming:
                yield
            return
        with held(self._lock_path):
            yield

    def notifications(self, subscription_id: str, first: int, last: int) -> list[NotificationRow]:
        columns = subscription_notifications.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(subscription_notifications)
                .where(
                    columns.subscription_id == subscription_id,
                    columns.event_number.between(first, last),
                )
                .order_by(columns.event_number)
            ).mappings()
            return [NotificationRow(**row) for row in rows]

    # The worker's side.

    def timed_head(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.max(timed_happenings.c.id))).scalar() or 0

    def note_happening(self, topic: str, aggregate_id: str, key: str, at: str) -> bool:
        """Notes a time-driven happening once (its unique key); False if it was noted before."""
        exists = select(timed_happenings.c.id).where(
            timed_happenings.c.topic == topic,
            timed_happenings.c.aggregate_id == aggregate_id,
            timed_happenings.c.key == key,
        )
        with self._writer.begin() as connection:
            if connection.execute(exists).first():
                return False
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(timed_happenings).values(
                            topic=topic, aggregate_id=aggregate_id, key=key, noted_at=at
                        )
                    )
            except Exception as error:  # another replica noted it first
                if "unique" in str(error).lower() or "duplicate" in str(error).lower():
                    return False
                raise
        return True

    def happenings(self, after: int, limit: int) -> list[Happening]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(timed_happenings)
                .where(timed_happenings.c.id > after)
                .order_by(timed_happenings.c.id)
                .limit(limit)
            ).mappings()
            return [Happening(**row) for row in rows]

    def any_live(self) -> bool:
        """Whether any subscription is on: without one the worker has nothing to look at."""
        with self.engine.connect() as connection:
            return connection.execute(_ANY_LIVE).first() is not None

    def has_work(self, events_head: int, timed_head: int, at: float) -> bool:
        with self.engine.connect() as connection:
            return (
                connection.execute(
                    select(subscriptions.c.id).where(_due(events_head, timed_head, at)).limit(1)
                ).first()
                is not None
            )

    @contextmanager
    def claim(self, events_head: int, timed_head: int, at: float) -> Iterator[Claim]:
        """The subscriptions with work to do that no other replica is working on: on
        PostgreSQL locked (`FOR UPDATE SKIP LOCKED`) until the claim ends, when the progress
        is written in the same transaction; on SQLite one claim at a time, whatever the process."""
        query = select(subscriptions).where(_due(events_head, timed_head, at))
        query = query.order_by(subscriptions.c.id)
        if self.postgres:
            with self.engine.begin() as connection:
                locked = connection.execute(query.with_for_update(skip_locked=True)).mappings()
                claim = Claim([_row(row) for row in locked])
                yield claim
                claim.write(connection)
            return
        with self._sqlite_claim():
            with self.engine.connect() as connection:
                rows = [_row(row) for row in connection.execute(query).mappings()]
            claim = Claim(rows)
            yield claim
            with self._writer.begin() as connection:
                claim.write(connection)


# Built once: the worker asks it at each tick (issue 15).
_ANY_LIVE = select(subscriptions.c.id).where(subscriptions.c.status != "off").limit(1)


def _due(events_head: int, timed_head: int, at: float) -> Any:
    c = subscriptions.c
    return and_(
        c.status != "off",
        or_(c.next_attempt_at.is_(None), c.next_attempt_at <= at),
        or_(
            c.status == "requested",
            c.delivered_through < c.events_count,
            and_(c.source == "events", c.cursor < events_head),
            and_(c.source == "timed", c.cursor < timed_head),
            c.heartbeat_due_at <= at,
        ),
    )


class Claim:
    """Claimed subscriptions; what the worker changed of them and the notifications it
    numbered, written together when the claim ends."""

    def __init__(self, rows: list[SubscriptionRow]) -> None:
        self.rows = {row.id: row for row in rows}
        self._changed: set[str] = set()
        self._notifications: list[NotificationRow] = []

    def change(self, row: SubscriptionRow) -> None:
        self.rows[row.id] = row
        self._changed.add(row.id)

    def numbered(self, notification: NotificationRow) -> None:
        self._notifications.append(notification)

    def write(self, connection: Connection) -> None:
        """One statement each for the notifications and the rows (executemany): a tick over
        an event with a hundred subscribers writes a hundred of each."""
        if self._notifications:
            connection.execute(
                insert(subscription_notifications), [n.__dict__ for n in self._notifications]
            )
        if self._changed:
            progress = [
                {"changed_id": subscription_id,
                 **{name: getattr(self.rows[subscription_id], name) for name in WORKER_COLUMNS}}
                for subscription_id in sorted(self._changed)
            ]  # fmt: skip
            connection.execute(_PROGRESS, progress)


_PROGRESS = (
    update(subscriptions)
    .where(subscriptions.c.id == bindparam("changed_id"))
    .values({name: bindparam(name) for name in WORKER_COLUMNS})
)
