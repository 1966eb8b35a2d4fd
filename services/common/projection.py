"""Read models built from an application's event log.

A projection applies each event of the log in order and records how far it has come in a
tracking row, in the same transaction as its changes, so it resumes exactly where it stopped
and can be dropped and rebuilt from position zero. Queries call `catch_up()` first, so a
replica always answers from the whole committed log; on PostgreSQL the tracking row is locked
while catching up, so replicas sharing a database never apply an event twice.

An append-only log can never be corrected, so one event a read model cannot apply must not
stop it for good: the failure is recorded in `projection_failures` (which event, which kind of
error, never the event's data) in the same transaction that moves the tracking row past it,
and the read model goes on serving everything else. `/readyz` and `sip projections status`
report what is recorded there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, LRUCache
from eventsourcing.utils import get_topic
from sqlalchemy import Column, Integer, MetaData, Select, String, Table, inspect, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from services.common.persistence import SQLITE_IMMEDIATE
from services.common.personal_data.lookup import searched_persons, stored_person
from services.common.personal_data.mapper import PersonalDataMapper

tracking_metadata = MetaData()
projection_tracking = Table(
    "projection_tracking",
    tracking_metadata,
    Column("name", String(100), primary_key=True),
    Column("position", Integer, nullable=False),
)
projection_failures = Table(
    "projection_failures",
    tracking_metadata,
    Column("name", String(100), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("originator_id", String(36), nullable=False),
    Column("originator_version", Integer, nullable=False),
    Column("topic", String(300), nullable=False),
    Column("error_type", String(200), nullable=False),
    Column("error", String(500), nullable=False),
)
log = logging.getLogger("sip.projection")
# Failures of the database itself (lost connection, lock timeout): never the event's fault.
_TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@dataclass(frozen=True)
class FailedEvent:
    """An event a read model could not apply and passed over."""

    projection: str
    position: int
    originator_id: str
    originator_version: int
    topic: str
    error_type: str
    error: str

    def as_json(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "position": self.position,
            "aggregateId": self.originator_id,
            "version": self.originator_version,
            "topic": self.topic,
            "errorType": self.error_type,
            "error": self.error,
        }


def failed_events(engine: Engine, name: str | None = None) -> list[FailedEvent]:
    """The events read models in this database passed over (only `name`'s, if given)."""
    if not inspect(engine).has_table(projection_failures.name):
        return []
    query = select(projection_failures).order_by(
        projection_failures.c.name, projection_failures.c.position
    )
    if name is not None:
        query = query.where(projection_failures.c.name == name)
    with engine.connect() as connection:
        return [
            FailedEvent(row.name, row.position, row.originator_id, row.originator_version,
                        row.topic, row.error_type, row.error)
            for row in connection.execute(query)
        ]  # fmt: skip


def record_failure(
    connection: Connection,
    name: str,
    *,
    position: int,
    originator_id: str,
    originator_version: int,
    topic: str,
    error: BaseException,
) -> None:
    """Records that `name` passed over the event at `position` (once: a reader that handles
    a page again after a restart finds it recorded already)."""
    error_type, description = describe_failure(error)
    log.error(
        "%s passed over event %s (%s v%s): %s %s",
        name, position, originator_id, originator_version, error_type, description,
    )  # fmt: skip
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    connection.execute(
        insert(projection_failures)
        .values(
            name=name,
            position=position,
            originator_id=originator_id[:36],
            originator_version=originator_version,
            topic=topic[:300],
            error_type=error_type[:200],
            error=description,
        )
        .on_conflict_do_nothing()
    )


def describe_failure(error: BaseException) -> tuple[str, str]:
    """The error's type and a description free of the event's data.

    A database error's first line names the constraint (its DETAIL and parameters would quote
    the row); any other error is located by where it was raised, since its message may quote
    a value from the event."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        first_line = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
        return type(error.orig).__name__, first_line[:500]
    frames = traceback.extract_tb(error.__traceback__)
    where = f"raised in {frames[-1].name} ({frames[-1].filename.rsplit('/', 1)[-1]}:" \
        f"{frames[-1].lineno})" if frames else "raised"  # fmt: skip
    return type(error).__name__, where[:500]


def tracked_position(connection: Connection, name: str, *, for_update: bool = False) -> int | None:
    """A tracking row's position, or None where it does not exist yet."""
    query = select(projection_tracking.c.position).where(projection_tracking.c.name == name)
    return connection.execute(query.with_for_update() if for_update else query).scalar_one_or_none()


def create_tracking_row(connection: Connection, name: str) -> None:
    """Creates the row at position 0; a no-op where a replica racing us created it first."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    connection.execute(
        insert(projection_tracking).values(name=name, position=0).on_conflict_do_nothing()
    )


class Projection(ABC):
    name: str
    metadata: MetaData
    # The aggregate whose events this read model is built from; the others are passed over.
    aggregate_class: type[Any]
    batch_size = 500

    def __init__(self, application: Application[Any], engine: Engine) -> None:
        self.application = application
        self.engine = engine
        self._writer = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        # Queries are single statements: on PostgreSQL, autocommit spares each one a BEGIN and
        # a ROLLBACK round trip (SQLite's transactions are in-process and cost nothing).
        self.reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._lock = threading.Lock()
        self._topic_prefix = get_topic(self.aggregate_class) + "."
        # Every event up to this position is in the read model, applied or passed over (by
        # this process or another): what a query need not look at again. It only grows, but
        # for a rebuild.
        self._accounted_for = 0
        # The key store's `generation` when this read model last dropped what it remembered.
        self._keys_generation = 0
        # The tables come from the migrations (`sip migrate`), never from a starting replica.

    @classmethod
    def create_scratch_tables(cls, engine: Engine) -> None:
        """Its tables in a scratch database of its own (`rebuild --check`), never a service's."""
        tracking_metadata.create_all(engine)
        cls.metadata.create_all(engine)

    @abstractmethod
    def apply(self, connection: Connection, event: Any) -> None:
        """Changes the read model for one event of `aggregate_class` (others are passed over
        before they are decoded), or stages the change for `write_staged`."""

    def person_stored(self, person: dict[str, Any] | None) -> str | None:
        """What the read model keeps for a person's identifier: its blind index, never the
        number (docs/decisions/0007)."""
        return stored_person(getattr(self.application, "personal_data", None), person)

    def decode(self, notification: Any) -> Any:
        """The stored event as the domain reads it (its personal fields opened)."""
        return self.application.mapper.to_domain_event(notification)

    def write_staged(self, connection: Connection) -> None:
        """Writes what `apply` staged, at the end of a batch; nothing by default."""
        return None

    def discard_staged(self) -> None:
        """Forgets what `apply` staged, where its batch is rolled back; nothing by default."""
        return None

    def position(self) -> int:
        with self.reader.connect() as connection:
            return tracked_position(connection, self.name) or 0

    def catch_up(self, stop: int | None = None) -> int:
        """Applies every event committed since the tracked position (up to `stop`, if given);
        returns how many. An event that cannot be applied is recorded and passed over."""
        applied = 0
        with self._lock:
            if self._nothing_to_apply(stop):
                return 0
            keys = getattr(self.application, "personal_data", None)
            if keys is not None:
                # Made (the first time) before the write transaction below, not inside it:
                # on SQLite a second writer would wait for it forever.
                keys.index_key()
            while True:
                try:
                    count = self._apply_next_batch(stop, one_by_one=False)
                except _TRANSIENT_ERRORS:
                    raise
                except Exception:
                    # The batch was rolled back whole: apply it again one event at a time, so
                    # only the event that fails is passed over (and recorded).
                    count = self._apply_next_batch(stop, one_by_one=True)
                if count is None:
                    return applied
                applied += count
                if count < self.batch_size:
                    return applied

    def _apply_next_batch(self, stop: int | None, *, one_by_one: bool) -> int | None:
        """Applies the next batch in one transaction with the tracking row; None where the
        tracked position has reached `stop` already."""
        with self._writer.begin() as connection:
            position = self._lock_position(connection)
            keys = getattr(self.application, "personal_data", None)
            # Another process may have erased a key this one still remembers: a batch applied
            # with it would put the erased content back into a rebuilt read model. Another
            # read model of this process may have been the one to notice (`generation`).
            if keys is not None:
                keys.forget_erased(connection)
                if keys.generation != self._keys_generation:
                    self._keys_generation = keys.generation
                    self.forget_remembered()
            if stop is not None and position >= stop:
                reached = position
                notifications = None
            else:
                notifications = self._apply_batch_from(connection, position, stop, one_by_one)
                reached = notifications[-1].id if notifications else position
        # Committed: the read model holds everything up to `reached`.
        self._accounted_for = max(self._accounted_for, reached)
        return None if notifications is None else len(notifications)

    def _apply_batch_from(
        self, connection: Connection, position: int, stop: int | None, one_by_one: bool
    ) -> Sequence[Any]:
        notifications = self.application.recorder.select_notifications(
            start=position, limit=self.batch_size, stop=stop, inclusive_of_start=False
        )
        self.discard_staged()  # what a batch rolled back before this one staged
        if isinstance(mapper := self.application.mapper, PersonalDataMapper):
            mapper.keep_keys_of(
                [n for n in notifications if n.topic.startswith(self._topic_prefix)]
            )
        for notification in notifications:
            if not notification.topic.startswith(self._topic_prefix):
                continue
            if one_by_one:
                self._apply_or_record(connection, notification)
            else:
                self.apply(connection, self.decode(notification))
        self.write_staged(connection)
        if notifications:
            connection.execute(
                projection_tracking.update()
                .where(projection_tracking.c.name == self.name)
                .values(position=notifications[-1].id)
            )
        return notifications

    def _apply_or_record(self, connection: Connection, notification: Any) -> None:
        try:
            with connection.begin_nested():
                self.apply(connection, self.decode(notification))
                self.write_staged(connection)
        except _TRANSIENT_ERRORS:
            raise  # the database, not the event: try again later rather than pass it over
        except Exception as error:
            self.discard_staged()
            record_failure(
                connection,
                self.name,
                position=notification.id,
                originator_id=str(notification.originator_id),
                originator_version=notification.originator_version,
                topic=notification.topic,
                error=error,
            )

    def forget_remembered(self) -> None:
        """Drops what it built from opened events and kept in memory; nothing by default."""
        return None

    def failed_events(self) -> list[FailedEvent]:
        """The events this read model could not apply and passed over."""
        return failed_events(self.engine, self.name)

    def _nothing_to_apply(self, stop: int | None) -> bool:
        """Whether every event since the tracked position belongs to other aggregates.

        Most events a service writes are access records, and every query catches up first:
        looking before locking spares each query a write transaction just to move the
        tracking row past events this read model passes over. The tracking row still moves
        when there is something to apply, or a whole batch to pass over. Once this process
        knows a position everything before which is in the read model, it looks only at the
        events after it, without reading the tracking row: one query, not three round trips
        (the disclosure check's hot path). Events another replica applied meanwhile show up
        there as events to apply, and the locked path finds them applied."""
        if stop is not None:
            # A bounded catch-up (the readiness probe, `rebuild --check`) is off the hot path:
            # it reads the tracking row, which another process may have set back (a rebuild,
            # a restored read model). What this one remembers would hide that, and the probe
            # would never work the read model off.
            position = self.position()
            self._accounted_for = min(self._accounted_for, position)
            start = self._accounted_for or position
        else:
            start = self._accounted_for or self.position()
        if stop is not None and start >= stop:
            return True
        notifications = self.application.recorder.select_notifications(
            start=start, limit=self.batch_size, stop=stop, inclusive_of_start=False
        )
        if len(notifications) == self.batch_size or any(
            n.topic.startswith(self._topic_prefix) for n in notifications
        ):
            return False
        self._accounted_for = max(
            self._accounted_for, notifications[-1].id if notifications else start
        )
        return True

    def rebuild(self) -> int:
        """Drops the read model and applies the whole log again from position zero."""
        with self._lock, self._writer.begin() as connection:
            self._accounted_for = 0
            # One write transaction, taken up front: on SQLite a running service writing
            # meanwhile would otherwise make it fail at once instead of waiting its turn. Rows,
            # not tables: the schema is the migrations' alone.
            for table in reversed(self.metadata.sorted_tables):
                connection.execute(table.delete())
            connection.execute(
                projection_tracking.delete().where(projection_tracking.c.name == self.name)
            )
            connection.execute(
                projection_failures.delete().where(projection_failures.c.name == self.name)
            )
        return self.catch_up()

    def _lock_position(self, connection: Connection) -> int:
        position = tracked_position(connection, self.name, for_update=True)
        if position is None:  # first run
            create_tracking_row(connection, self.name)
            position = tracked_position(connection, self.name, for_update=True)
            assert position is not None
        return position


@dataclass
class _StagedRow:
    aggregate: Any  # None: its person was erased
    event: Any  # the newest event applied to it
    created: bool  # whether its row is still to be inserted


class AggregateIndex(Projection):
    """A read model with one row per aggregate, as the aggregate stood after its newest event,
    and any related rows (memberships, terms) the subclass keeps beside it.

    Subclasses name the `index` table (its primary key is the aggregate's id, and it has a
    `last_updated` column), say what its row holds (`row`) and, if they keep related rows,
    how those follow (`apply_related`); searches build a query from `newest_first()` and the
    filters below, and run it with `ids()`.

    Catching up costs each event one step, not a replay: each event is applied to the
    aggregate as the one before it left it, kept in memory (`cache_size` aggregates, the
    least recently changed forgotten first), and each aggregate's rows are written once per
    batch, as its newest event in the batch left it."""

    index: Table
    cache_size = 1000

    def __init__(self, application: Application[Any], engine: Engine) -> None:
        super().__init__(application, engine)
        self._latest: LRUCache[UUID, Any] = LRUCache(maxsize=self.cache_size)
        self._staged: dict[UUID, _StagedRow] = {}

    @abstractmethod
    def row(self, aggregate: Any, event: Any) -> dict[str, Any]:
        """The index row's columns, the id aside."""

    def apply_related(self, connection: Connection, aggregate: Any) -> None:
        """Keeps the related rows in step with the aggregate; none by default."""

    @property
    def _id_column(self) -> Column[Any]:
        (id_column,) = self.index.primary_key.columns
        return id_column

    def apply(self, connection: Connection, event: Any) -> None:
        staged = self._staged.get(event.originator_id)
        created = staged.created if staged else event.originator_version == 1
        erased = getattr(self.application, "person_erased", None)
        if erased is not None and erased(event.originator_id):
            # The person was erased: the record is never replayed, and its rows go.
            with contextlib.suppress(KeyError):
                self._latest.get(event.originator_id, evict=True)
            self._staged[event.originator_id] = _StagedRow(None, event, created)
            return
        aggregate = self._advanced(event)
        self._staged[event.originator_id] = _StagedRow(aggregate, event, created)

    def write_staged(self, connection: Connection) -> None:
        staged, self._staged = self._staged, {}
        for aggregate_id_, one in staged.items():
            aggregate_id = str(aggregate_id_)
            if one.aggregate is None:
                self.forget(connection, aggregate_id)
                continue
            row = self.row(one.aggregate, one.event)
            if one.created:
                connection.execute(
                    self.index.insert().values({self._id_column.name: aggregate_id, **row})
                )
            else:
                connection.execute(
                    self.index.update().where(self._id_column == aggregate_id).values(**row)
                )
            self.apply_related(connection, one.aggregate)

    def discard_staged(self) -> None:
        self._staged = {}

    def forget_remembered(self) -> None:
        self._latest = LRUCache(maxsize=self.cache_size)

    def forget(self, connection: Connection, aggregate_id: str) -> None:
        """Drops every row of a record whose person was erased (docs/decisions/0007): the
        read models answer for them as for an unknown person."""
        id_name = self._id_column.name
        for table in self.metadata.sorted_tables:
            if id_name in table.c:
                connection.execute(table.delete().where(table.c[id_name] == aggregate_id))

    def _advanced(self, event: Any) -> Any:
        """The aggregate as `event` left it, from the one the event before left, kept from
        the last event applied where it can be (it is dropped where applying fails)."""
        aggregate_id, before = event.originator_id, event.originator_version - 1
        try:
            aggregate = self._latest.get(aggregate_id, evict=True)
        except KeyError:
            aggregate = None
        if aggregate is not None and aggregate.version > before:
            aggregate = None  # ahead of this event: its batch was rolled back, or a rebuild
        if aggregate is None and before > 0:
            aggregate = self.application.repository.get(aggregate_id, version=before)
        elif aggregate is not None and aggregate.version < before:
            # Another replica applied the events between (sharing the database).
            for missed in self.application.events.get(
                aggregate_id, gt=aggregate.version, lte=before
            ):
                aggregate = missed.mutate(aggregate)
        aggregate = event.mutate(aggregate)
        self._latest.put(aggregate_id, aggregate)
        return aggregate

    def newest_first(self) -> Select[Any]:
        return select(self._id_column).order_by(self.index.c.last_updated.desc())

    def identified_by(
        self,
        query: Select[Any],
        system_column: Column[Any],
        value_column: Column[Any],
        identifier: tuple[str | None, str] | None,
    ) -> Select[Any]:
        """Rows for a person's identifier `(system, value)`, found by its blind index; any
        system where it is None."""
        if identifier is None:
            return query
        system, value = identifier
        keys = getattr(self.application, "personal_data", None)
        query = query.where(value_column.in_(searched_persons(keys, system, value)))
        return query.where(system_column == system) if system else query

    def related(self, query: Select[Any], table: Table, **equal: Any) -> Select[Any]:
        """Rows of aggregates with a related row in `table` whose columns equal `equal`."""
        related_id = table.c[self._id_column.name]
        return query.where(
            self._id_column.in_(
                select(related_id).where(*(table.c[name] == value for name, value in equal.items()))
            )
        )

    def ids(self, query: Select[Any], parameters: dict[str, Any] | None = None) -> list[UUID]:
        """Runs a query for aggregate ids over the whole committed log (catching up first);
        `parameters` are the values of a query built once with bind parameters."""
        self.catch_up()
        with self.reader.connect() as connection:
            return [UUID(row) for row in connection.execute(query, parameters).scalars()]
