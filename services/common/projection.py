"""Read models built from an application's event log.

A projection applies each event of the log in order and records how far it has come in a
tracking row, in the same transaction as its changes, so it resumes exactly where it stopped
and can be dropped and rebuilt from position zero. Queries call `catch_up()` first, so a
replica always answers from the whole committed log; on PostgreSQL the tracking row is locked
while catching up, so replicas sharing a database never apply an event twice.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.utils import get_topic
from sqlalchemy import Column, Integer, MetaData, Select, String, Table, select
from sqlalchemy.engine import Connection, Engine

from services.common.persistence import SQLITE_IMMEDIATE

tracking_metadata = MetaData()
projection_tracking = Table(
    "projection_tracking",
    tracking_metadata,
    Column("name", String(100), primary_key=True),
    Column("position", Integer, nullable=False),
)


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
        # (tracked position, position up to which only events of other aggregates follow it)
        self._passed_over = (0, 0)
        tracking_metadata.create_all(engine)
        self.metadata.create_all(engine)

    @abstractmethod
    def apply(self, connection: Connection, event: Any) -> None:
        """Changes the read model for one event of `aggregate_class` (others are passed over
        before they are decoded)."""

    def position(self) -> int:
        with self.reader.connect() as connection:
            return tracked_position(connection, self.name) or 0

    def catch_up(self, stop: int | None = None) -> int:
        """Applies every event committed since the tracked position (up to `stop`, if given);
        returns how many."""
        applied = 0
        with self._lock:
            if self._nothing_to_apply(stop):
                return 0
            while True:
                with self._writer.begin() as connection:
                    position = self._lock_position(connection)
                    if stop is not None and position >= stop:
                        return applied
                    notifications = self.application.recorder.select_notifications(
                        start=position, limit=self.batch_size, stop=stop, inclusive_of_start=False
                    )
                    for notification in notifications:
                        if notification.topic.startswith(self._topic_prefix):
                            self.apply(
                                connection, self.application.mapper.to_domain_event(notification)
                            )
                    if notifications:
                        connection.execute(
                            projection_tracking.update()
                            .where(projection_tracking.c.name == self.name)
                            .values(position=notifications[-1].id)
                        )
                applied += len(notifications)
                if len(notifications) < self.batch_size:
                    return applied

    def _nothing_to_apply(self, stop: int | None) -> bool:
        """Whether every event since the tracked position belongs to other aggregates.

        Most events a service writes are access records, and every query catches up first:
        looking before locking spares each query a write transaction just to move the
        tracking row past events this read model passes over. The tracking row still moves
        when there is something to apply, or a whole batch to pass over."""
        tracked = self.position()
        passed_from, passed_to = self._passed_over
        start = passed_to if passed_from == tracked else tracked
        if stop is not None and start >= stop:
            return True
        notifications = self.application.recorder.select_notifications(
            start=start, limit=self.batch_size, stop=stop, inclusive_of_start=False
        )
        if len(notifications) == self.batch_size or any(
            n.topic.startswith(self._topic_prefix) for n in notifications
        ):
            return False
        if notifications:
            self._passed_over = (tracked, notifications[-1].id)
        return True

    def rebuild(self) -> int:
        """Drops the read model and applies the whole log again from position zero."""
        with self._lock, self._writer.begin() as connection:
            # One write transaction, taken up front: on SQLite a running service writing
            # meanwhile would otherwise make the DDL fail at once instead of waiting its turn.
            self.metadata.drop_all(connection)
            self.metadata.create_all(connection)
            connection.execute(
                projection_tracking.delete().where(projection_tracking.c.name == self.name)
            )
        return self.catch_up()

    def _lock_position(self, connection: Connection) -> int:
        position = tracked_position(connection, self.name, for_update=True)
        if position is None:  # first run
            create_tracking_row(connection, self.name)
            position = tracked_position(connection, self.name, for_update=True)
            assert position is not None
        return position


class AggregateIndex(Projection):
    """A read model with one row per aggregate, as the aggregate stood after each of its events,
    and any related rows (memberships, terms) the subclass keeps beside it.

    Subclasses name the `index` table (its primary key is the aggregate's id, and it has a
    `last_updated` column), say what its row holds (`row`) and, if they keep related rows,
    how those follow (`apply_related`); searches build a query from `newest_first()` and the
    filters below, and run it with `ids()`."""

    index: Table

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
        # The aggregate as this event left it: the read model holds its state at each step.
        aggregate: Any = self.application.repository.get(
            event.originator_id, version=event.originator_version
        )
        aggregate_id = str(aggregate.id)
        row = self.row(aggregate, event)
        if aggregate.version == 1:
            connection.execute(
                self.index.insert().values({self._id_column.name: aggregate_id, **row})
            )
        else:
            connection.execute(
                self.index.update().where(self._id_column == aggregate_id).values(**row)
            )
        self.apply_related(connection, aggregate)

    def newest_first(self) -> Select[Any]:
        return select(self._id_column).order_by(self.index.c.last_updated.desc())

    @staticmethod
    def identified_by(
        query: Select[Any],
        system_column: Column[Any],
        value_column: Column[Any],
        identifier: tuple[str | None, str] | None,
    ) -> Select[Any]:
        """Rows for a person's identifier `(system, value)`; any system where it is None."""
        if identifier is None:
            return query
        system, value = identifier
        query = query.where(value_column == value)
        return query.where(system_column == system) if system else query

    def related(self, query: Select[Any], table: Table, **equal: Any) -> Select[Any]:
        """Rows of aggregates with a related row in `table` whose columns equal `equal`."""
        related_id = table.c[self._id_column.name]
        return query.where(
            self._id_column.in_(
                select(related_id).where(*(table.c[name] == value for name, value in equal.items()))
            )
        )

    def ids(self, query: Select[Any]) -> list[UUID]:
        """Runs a query for aggregate ids over the whole committed log (catching up first)."""
        self.catch_up()
        with self.reader.connect() as connection:
            return [UUID(row) for row in connection.execute(query).scalars()]
