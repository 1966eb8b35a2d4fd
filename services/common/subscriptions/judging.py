"""What a subscriber may be told, decided at the moment of delivery by the same rule as every
read: `RecordSystemRule` (services/common/audit/feed_access.py), the event feed's rule for
record systems, over the resource type's disclosure function. A notification is numbered
only for an event the subscriber may read in full; it is delivered (or fetched by `$events`)
with its focus only while the subscriber may still read the resource, and with the resource
only as the subscriber may read it (the type's redaction)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.actor import Actor
from services.common.access_log import SUCCESS, AccessRecord
from services.common.audit.feed import event_author
from services.common.audit.feed_access import (
    EntryKind,
    FeedEvent,
    RecordSystemRule,
    no_entry_kind,
    transcoded,
)
from services.common.domain import NotFound
from services.common.fhir_time import fhir_instant, now
from services.common.resource_routes import ResourceAccess
from services.common.subscriptions.notification import Told
from services.common.subscriptions.person_filter import person_passes
from services.common.subscriptions.store import Happening, NotificationRow, SubscriptionRow
from services.common.subscriptions.topics import Classifier, Occurrence, TimedCheck, Topic


@dataclass(frozen=True)
class Published:
    """What a service offers to subscribers: its resources' one way out (`access`), how a
    resource is rendered, its topics, what its events mean for them, its time-driven check."""

    access: ResourceAccess
    to_fhir: Callable[[Any], dict[str, Any]]
    topics: tuple[Topic, ...]
    classify: Classifier
    timed_check: TimedCheck | None = None
    entry_kind: EntryKind = no_entry_kind

    def topic(self, code: str) -> Topic | None:
        return next((topic for topic in self.topics if topic.code == code), None)


def subscriber(row: SubscriptionRow) -> Actor:
    """The record system that made the subscription, as the disclosure rule sees it."""
    return Actor(subject=row.owner_subject, role="integration", organization=row.owner)


class Moment:
    """One instant of delivery: each resource loaded once, each subscriber's rule made once."""

    def __init__(self, published: Published) -> None:
        self.published = published
        self.application = published.access.application
        self._aggregates: dict[UUID, Any] = {}
        self._rules: dict[tuple[str, str], RecordSystemRule] = {}
        self._actors: dict[tuple[str, str], dict[str, Any]] = {}
        self._occurrences: dict[int, tuple[dict[str, Any], list[Occurrence]]] = {}

    def aggregate(self, aggregate_id: UUID) -> Any:
        """The resource as it is now; raises NotFound."""
        if aggregate_id not in self._aggregates:
            self._aggregates[aggregate_id] = self.application.aggregate(aggregate_id)
        return self._aggregates[aggregate_id]

    def rule(self, row: SubscriptionRow) -> RecordSystemRule:
        key = (row.owner, row.owner_subject)
        if key not in self._rules:
            self._rules[key] = RecordSystemRule(
                subscriber(row),
                self.published.access.disclose,
                self.aggregate,
                self.published.entry_kind,
            )
        return self._rules[key]

    def _actor_data(self, row: SubscriptionRow) -> dict[str, Any]:
        key = (row.owner, row.owner_subject)
        if key not in self._actors:
            self._actors[key] = subscriber(row).as_event_data()
        return dict(self._actors[key])

    def _classified(self, stored: Any) -> tuple[dict[str, Any], list[Occurrence]]:
        if stored.id not in self._occurrences:
            payload = json.loads(stored.state)
            name = stored.topic.rpartition(".")[2]
            aggregate = self.aggregate(stored.originator_id)
            self._occurrences[stored.id] = (
                payload,
                self.published.classify(name, payload, aggregate),
            )
        return self._occurrences[stored.id]

    def event_matches(self, row: SubscriptionRow, stored: Any) -> NotificationRow | None:
        """The notification numbered for a stored event, or None where the subscription is
        not about it or the subscriber may not read it in full."""
        try:
            payload, occurrences = self._classified(stored)
        except NotFound:
            return None
        occurrence = next((o for o in occurrences if o.topic == row.topic), None)
        if occurrence is None or not self._filters_pass(row, occurrence, stored.originator_id):
            return None
        verdict = self.rule(row)(
            FeedEvent(
                aggregate_id=stored.originator_id,
                topic=stored.topic,
                author=event_author(payload),
                payload=payload,
                access_record=False,
                record_custodian=None,
            )
        )
        if not verdict.content:
            return None
        return NotificationRow(
            subscription_id=row.id,
            event_number=row.events_count + 1,
            position=stored.id,
            topic=row.topic,
            focus_type=self.application.resource_type,
            focus_id=str(stored.originator_id),
            part=occurrence.part,
            occurred_at=_instant(transcoded(payload.get("timestamp"))),
        )

    def happening_matches(
        self, row: SubscriptionRow, happening: Happening
    ) -> NotificationRow | None:
        aggregate_id = UUID(happening.aggregate_id)
        occurrence = Occurrence(happening.topic)
        if happening.topic != row.topic or not self._filters_pass(row, occurrence, aggregate_id):
            return None
        if self.rule(row).disclosure(aggregate_id) is None:
            return None
        return NotificationRow(
            subscription_id=row.id,
            event_number=row.events_count + 1,
            position=happening.id,
            topic=row.topic,
            focus_type=self.application.resource_type,
            focus_id=happening.aggregate_id,
            part=None,
            occurred_at=happening.noted_at,
        )

    def _filters_pass(
        self, row: SubscriptionRow, occurrence: Occurrence, aggregate_id: UUID
    ) -> bool:
        if occurrence.told_to is not None and row.owner not in occurrence.told_to:
            return False
        if row.parts and occurrence.part not in row.parts.split(","):
            return False
        if row.person_value:
            try:
                person = self.aggregate(aggregate_id).person_identifier or {}
            except NotFound:
                return False
            keys = getattr(self.application, "personal_data", None)
            if not person_passes(keys, row, person):
                return False
        return True

    def told(
        self, row: SubscriptionRow, notification: NotificationRow
    ) -> tuple[Told, AccessRecord | None]:
        """The notification as the subscriber may be told it now, and the access record of
        telling it (None when nothing of the resource is told)."""
        aggregate_id = UUID(notification.focus_id)
        disclosure = self.rule(row).disclosure(aggregate_id)
        if disclosure is None:
            return Told(notification, shown=False), None
        aggregate = self.aggregate(aggregate_id)
        resource = None
        if row.payload == "full-resource":
            resource = self.published.to_fhir(self.published.access.redact(aggregate, disclosure))
        record = AccessRecord(
            interaction="subscription-notification",
            action="R",
            outcome=SUCCESS,
            actor=self._actor_data(row),
            patient=aggregate.person_identifier,
            custodian=aggregate.custodian,
            entity=f"{notification.focus_type}/{notification.focus_id}",
            consents=list(disclosure.consents),
            query=None,
            detail=f"Subscription/{row.id} event {notification.event_number} ({row.payload})",
            recorded_at=now(),
        )
        return Told(notification, shown=True, resource=resource), record


def _instant(value: Any) -> str:
    try:
        return fhir_instant(datetime.fromisoformat(str(value)))
    except ValueError:
        return fhir_instant(now())
