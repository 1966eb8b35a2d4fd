"""What both services' applications share: reading aggregates as FHIR versions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from copy import deepcopy
from datetime import date, datetime
from threading import Lock
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, Repository
from eventsourcing.persistence import (
    EventStore,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoding,
)
from eventsourcing.sqlite import SQLiteConnectionPool
from eventsourcing.utils import get_topic

from contracts.personal_fields import PERSONAL_FIELDS
from services.common.access_log import AccessRecord, current_write, records_for_write
from services.common.bundles.unit_of_work import unit_of
from services.common.domain import NotFound, ensure_expected_version
from services.common.fhir_time import published
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.mapper import PersonalDataMapper, SealingEventStore
from services.common.wal_checkpoints import stop_checkpointing

Result = TypeVar("Result")


class DateAsISO(Transcoding):
    """Calendar dates in events (target dates, follow-up dates), stored as ISO text."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class OneCopyAtATime(Repository[UUID]):
    """The library's repository, whose reads of one kept aggregate take turns.

    The library brings a kept aggregate up to date under a lock of its own, but copies it
    for the caller after releasing that lock: a read copying it while another read brings it
    up to date could copy it half changed (an event's changes without its version) or fail
    ("dictionary changed size during iteration"). Reads of aggregates sharing a stripe wait
    for each other only while one is brought up to date and copied."""

    STRIPES = 64

    def __init__(
        self, built: Repository[UUID], erased: Callable[[UUID], bool] = lambda _: False
    ) -> None:
        # Takes over the one the library built from the environment (cache size, fast-forward).
        self.__dict__.update(built.__dict__)
        self._stripes = [Lock() for _ in range(self.STRIPES)]
        # A record whose person was erased is not found, by every reader (the API, the feed,
        # the subscriptions, the read models), even from a copy kept from before.
        self._erased = erased

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        copy: Callable[[Any], Any] | None = None,
        **options: Any,
    ) -> Any:
        """`copy`, if given, copies the kept aggregate instead of a deep copy: a cheaper one
        for a caller that only reads it (the disclosure check, issue 15)."""
        if self._erased(aggregate_id):
            raise AggregateNotFoundError(aggregate_id)
        if version is not None or self.cache is None:
            return super().get(aggregate_id, version=version, **options)
        with self._stripes[hash(aggregate_id) % self.STRIPES]:
            if copy is None:
                return super().get(aggregate_id, **options)
            return copy(super().get(aggregate_id, deepcopy_from_cache=False, **options))


class VersionedApplication(Application[UUID]):
    """An application whose aggregates are FHIR resources; each event is one version.

    It also keeps the service's access log: writes made while a `WriteContext` is current
    are saved together with their access records, in one transaction. While a unit of work
    is current (a FHIR transaction, services/common/bundles/unit_of_work.py) saves are held in
    it and aggregates are read as it holds them.
    """

    resource_type: str
    aggregate_class: type[Any]
    # Other aggregates this application's event store holds, by resource type (the SIP
    # service's stays, docs/decisions/0008): the audit feed names their records by these.
    other_aggregates: ClassVar[Mapping[str, type[Any]]] = MappingProxyType({})

    def __init__(
        self, *args: Any, personal_data: PersonalDataKeys | None = None, **kwargs: Any
    ) -> None:
        # With the key store, each personal field is sealed with its person's key as the event
        # is stored (docs/decisions/0007); the library asks for the mapper while it starts.
        self.personal_data = personal_data
        super().__init__(*args, **kwargs)
        # Told after each commit of this process (e.g. the subscription worker's wake-up), so
        # a reader of the log need not poll it often to learn of this process's writes.
        self.after_commit: list[Callable[[], None]] = []

    def construct_mapper(self) -> Mapper[UUID]:
        if self.personal_data is None:
            return super().construct_mapper()
        return PersonalDataMapper(
            self.construct_transcoder(), self.personal_data, PERSONAL_FIELDS, self._first_event
        )

    def construct_event_store(self) -> EventStore[UUID]:
        if self.personal_data is None:
            return super().construct_event_store()
        return SealingEventStore(mapper=self.mapper, recorder=self.recorder)

    def _first_event(self, aggregate_id: UUID) -> StoredEvent | None:
        events = self.recorder.select_events(aggregate_id, lte=1, limit=1)
        return events[0] if events else None

    def construct_repository(self) -> Repository[UUID]:
        return OneCopyAtATime(super().construct_repository(), erased=self.person_erased)

    def close(self) -> None:
        datastore = getattr(self.recorder, "datastore", None)
        pool = getattr(datastore, "pool", None)
        if isinstance(pool, SQLiteConnectionPool) and not pool.is_sqlite_memory_mode:
            stop_checkpointing(pool.db_name)
        super().close()

    def _notify(self, recordings: list[Any]) -> None:
        for listener in self.after_commit:
            listener()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def resource_type_of(self, aggregate: Any) -> str | None:
        """The FHIR resource type an aggregate of this event store is served as."""
        if isinstance(aggregate, self.aggregate_class):
            return self.resource_type
        return next((t for t, c in self.other_aggregates.items() if isinstance(aggregate, c)), None)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        context = current_write.get()
        if context is not None:
            objs = (*objs, *records_for_write(context, list(objs), self.resource_type_of))
        unit = unit_of(self)
        if unit is not None:
            unit.hold(objs, kwargs)
            return []
        return super().save(*objs, **kwargs)

    def _record(self, processing_event: Any) -> Any:
        mapper = self.mapper
        if not isinstance(mapper, PersonalDataMapper):
            return super()._record(processing_event)
        # The aggregates tell the mapper whose class each author's entry is sealed under.
        with mapper.writing_records(processing_event.aggregates):
            return super()._record(processing_event)

    def record_access(self, **record: Any) -> AccessRecord:
        """Logs a read or a refusal; raises if the log cannot be written (fail closed)."""
        return self.record_accesses([record])[0]

    def record_accesses(self, records: list[dict[str, Any]]) -> list[AccessRecord]:
        """Logs a request's reads in one transaction: a search showing 2,000 persons is one
        commit, not 2,000. Raises if the log cannot be written (fail closed): all or none."""
        accesses = [AccessRecord(**record) for record in records]
        if not accesses:
            return []
        unit = unit_of(self)
        if unit is not None:
            unit.hold(tuple(accesses), {})
        else:
            super().save(*accesses)
        return accesses

    def aggregate(self, aggregate_id: UUID, version: int | None = None) -> Any:
        return self.aggregate_of(self.aggregate_class, self.resource_type, aggregate_id, version)

    def aggregate_of(
        self, cls: type[Any], resource_type: str, aggregate_id: UUID, version: int | None = None
    ) -> Any:
        """The aggregate if it is a `cls`. One event store holds more than one aggregate class
        (the SIP service's plans and stays, docs/decisions/0008): an id of another class is
        not found as this resource type, never handed to code that expects a `cls`."""
        unit = unit_of(self)
        if unit is not None and version is None and aggregate_id in unit.aggregates:
            found = unit.aggregates[aggregate_id]  # as the transaction's earlier entries left it
        else:
            try:
                found = self.repository.get(aggregate_id, version=version)
            except AggregateNotFoundError:
                found = None
        if not isinstance(found, cls):
            raise NotFound(f"{resource_type}/{aggregate_id}")
        return found

    def person_erased(self, aggregate_id: UUID) -> bool:
        """Whether the record's person was erased (docs/decisions/0007): such a record is
        answered as an unknown one, and never replayed (its fields read as `Erased`). Asked
        of the key store, so a copy kept in memory from before the erasure is not served."""
        mapper = self.mapper
        return isinstance(mapper, PersonalDataMapper) and bool(mapper.person_erased(aggregate_id))

    def aggregate_for_change(self, aggregate_id: UUID, expected_version: int | None) -> Any:
        aggregate = self.aggregate(aggregate_id)
        ensure_expected_version(aggregate.version, expected_version)
        return aggregate

    def change(
        self,
        aggregate_id: UUID,
        command: Callable[[Any], Result],
        *,
        expected_version: int | None = None,
    ) -> tuple[Any, Result]:
        """Loads the aggregate, runs one command on it and saves its events; a refused
        command (or an If-Match naming another version) writes nothing."""
        aggregate = self.aggregate_for_change(aggregate_id, expected_version)
        result = command(aggregate)
        self.save(aggregate)
        return aggregate, result

    def versions(self, aggregate_id: UUID) -> Iterator[Any]:
        """Each version in order, replayed once from the events."""
        aggregate = None
        if self.person_erased(aggregate_id):
            raise NotFound(f"{self.resource_type}/{aggregate_id}")
        for domain_event in self.events.get(aggregate_id):
            aggregate = domain_event.mutate(aggregate)
            yield deepcopy(aggregate)
        if aggregate is None:
            raise NotFound(f"{self.resource_type}/{aggregate_id}")

    def version_at(self, aggregate_id: UUID, at: datetime) -> Any:
        """The aggregate as it stood at an instant (time travel); NotFound before it existed.
        Found by the events' times, then replayed once up to it (not copied at each version)."""
        then = None
        for domain_event in self.events.get(aggregate_id):
            if published(domain_event.timestamp) > at:
                break
            then = domain_event.originator_version
        if then is None:
            raise NotFound(f"{self.resource_type}/{aggregate_id} at {at.isoformat()}")
        return self.aggregate(aggregate_id, version=then)

    def aggregate_ids(
        self, page_size: int = 1000, aggregate_class: type[Any] | None = None
    ) -> Iterator[UUID]:
        """Every aggregate of the resource type (or of another class the store holds), in the
        order they were created."""
        created_prefix = get_topic(aggregate_class or self.aggregate_class) + "."
        position = 0
        while True:
            notifications = self.recorder.select_notifications(
                start=position, limit=page_size, inclusive_of_start=False
            )
            for notification in notifications:
                if notification.originator_version == 1 and notification.topic.startswith(
                    created_prefix
                ):
                    yield notification.originator_id
            if len(notifications) < page_size:
                return
            position = notifications[-1].id


class VersionStepper:
    """Versions of one aggregate, asked oldest first: each is reconstructed from the one asked
    before it, so a page of versions costs one replay up to its newest, not one per version
    (a history page of a plan of 400 versions reconstructs ten, not 400). Given the
    aggregate's events, already read, it replays those and reads nothing more."""

    def __init__(
        self,
        application: VersionedApplication,
        aggregate_id: UUID,
        events: list[Any] | None = None,
        load: Callable[..., Any] | None = None,
    ) -> None:
        self.application = application
        self.aggregate_id = aggregate_id
        self.events = events
        # The first replay: a typed load where the store holds more than one class.
        self.load = load or application.aggregate
        self._kept: Any = None

    def __call__(self, version: int) -> Any:
        kept = self._kept
        if kept is None or kept.version > version:
            kept = None
        if self.events is not None:
            for domain_event in self.events[kept.version if kept else 0 : version]:
                kept = domain_event.mutate(kept)
        elif kept is None:
            kept = self.load(self.aggregate_id, version=version)
        elif kept.version < version:
            for domain_event in self.application.events.get(
                self.aggregate_id, gt=kept.version, lte=version
            ):
                kept = domain_event.mutate(kept)
        if kept is None or kept.version != version:
            raise NotFound(f"{self.application.resource_type}/{self.aggregate_id} v{version}")
        self._kept = kept
        return deepcopy(kept)  # the caller's own: the kept one goes on changing
