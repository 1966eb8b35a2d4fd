"""`_sort` that pages each match exactly once while the resources change
(docs/decisions/0005-sorted-paging.md).

A sort value such as `_lastUpdated` changes when the resource does, so a keyset on the
current value would show a resource changed between two pages twice (moved behind the
cursor) or never (moved before it). Every page of a sorted search therefore orders by the
values as they stood at the first page's *snapshot*: the event store's last notification id
when the first page was read, carried in the cursor. Notification ids are given in commit
order, so "the version as of the snapshot" is exact: the version before the first event
committed after it. A resource created after the snapshot has no version then and is left
out of that paging; one changed meanwhile is shown as it is now, at its place as of then.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from services.common.application import VersionedApplication
from services.common.audit.feed import event_topics
from services.common.result_parameters import SortKey

SortValue = Callable[[Any], datetime | None]
_CHUNK = 1000


class SortSnapshot:
    """The resources of one application as they stood at a notification id."""

    def __init__(self, application: VersionedApplication, snapshot: int | None) -> None:
        self.application = application
        recorder: Any = application.recorder
        self.position: int = (
            snapshot if snapshot is not None else recorder.max_notification_id() or 0
        )

    @functools.cached_property
    def _first_later(self) -> dict[UUID, int]:
        """Each aggregate changed after the snapshot: its first version committed since.
        Read on first use, after the aggregates were loaded, so every version a loaded
        aggregate has beyond the snapshot is found."""
        recorder: Any = self.application.recorder
        topics = event_topics(self.application.aggregate_class)
        first: dict[UUID, int] = {}
        start = self.position
        while True:
            found = recorder.select_notifications(
                start=start, limit=_CHUNK, topics=topics, inclusive_of_start=False
            )
            for notification in found:
                first.setdefault(notification.originator_id, notification.originator_version)
            if len(found) < _CHUNK:
                return first
            start = found[-1].id

    def existing(self, aggregates: Iterable[Any]) -> list[Any]:
        """The aggregates that existed at the snapshot, all loaded before it is asked which
        changed since: a version committed while they load is then found too."""
        loaded = list(aggregates)
        return [a for a in loaded if self._first_later.get(a.id) != 1]

    def then(self, aggregate: Any) -> Any:
        later = self._first_later.get(aggregate.id)
        if later is None:
            return aggregate
        return self.application.aggregate(aggregate.id, version=later - 1)

    def order(self, keys: tuple[SortKey, ...], values: Mapping[str, SortValue]) -> Callable:
        """A keyset key of an aggregate: its sort values as of the snapshot (a missing
        value last in either direction), then its id, so no two resources tie."""

        def key(aggregate: Any) -> tuple[Any, ...]:
            then = self.then(aggregate)
            parts: list[Any] = []
            for sort_key in keys:
                value = values[sort_key.name](then)
                if value is None:
                    parts += [1, 0]
                    continue
                micros = round(value.timestamp() * 1_000_000)
                parts += [0, -micros if sort_key.descending else micros]
            return (*parts, str(aggregate.id))

        return key
