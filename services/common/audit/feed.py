"""`GET /events`: every stored event in commit order, with its chain hashes, paged by a
cursor, so a whole history can be replayed from position 0; and `GET /events/checkpoint`,
the signed head of the log."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Annotated, Any

from eventsourcing.utils import get_topic
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import text
from sqlalchemy.engine import Engine

from contracts.actor import Actor
from contracts.events import CREATION_FIELDS, CreationFields
from services.common.access_log import SUCCESS, AccessRecord
from services.common.application import VersionedApplication
from services.common.audit.checkpoints import Checkpoint, CheckpointSigner
from services.common.auth.dependency import authorize
from services.common.fhir_api import FhirError, access_log_unwritable
from services.common.fhir_time import fhir_instant, now

# The raw log holds every organisation's data: only a scope naming it, never `*`, opens it,
# and only to auditors and systems (the peer service follows it).
EventReader = Annotated[Actor, Depends(authorize("Event", "r", explicit_scope=True))]
FEED_ROLES = ("auditor", "integration")
# The largest notification id the stores hold (a BIGINT); a larger cursor would overflow them.
MAX_POSITION = 2**63 - 1


def event_topics(aggregate_class: type[Any]) -> list[str]:
    """The topics of every event class an aggregate class has."""
    return [
        get_topic(member)
        for member in vars(aggregate_class).values()
        if isinstance(member, type) and issubclass(member, aggregate_class.Event)
    ]


class EventFeed:
    """What the feed's routes read: one service's event store, its chain table and its
    checkpoint key. An app serves it by `app.state.event_feed = EventFeed(...)` and
    `app.include_router(router)`."""

    def __init__(
        self, application: VersionedApplication, engine: Engine, signer: CheckpointSigner
    ) -> None:
        self.application = application
        self.engine = engine
        self.signer = signer
        self.chain_table: str = application.recorder.chain_table  # type: ignore[attr-defined]
        aggregate_types = {cls.__name__: cls for cls in (application.aggregate_class, AccessRecord)}
        self.topics_of_type = {name: event_topics(cls) for name, cls in aggregate_types.items()}

    def chain_rows(self, first: int, last: int) -> dict[int, tuple[str, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    f"SELECT notification_id, stream_hash, log_hash FROM {self.chain_table} "
                    "WHERE notification_id BETWEEN :first AND :last"
                ),
                {"first": first, "last": last},
            )
            return {row[0]: (row[1], row[2]) for row in rows}

    def head(self) -> int:
        return self.application.recorder.max_notification_id() or 0

    def notifications(self, after: int, limit: int, head: int, event_type: str | None) -> Any:
        return self.application.recorder.select_notifications(
            start=after,
            limit=limit,
            stop=head,
            topics=self.topics_of_type[event_type] if event_type else (),
            inclusive_of_start=False,
        )

    def items(self, notifications: Sequence[Any]) -> list[dict[str, Any]]:
        links = self.chain_rows(notifications[0].id, notifications[-1].id) if notifications else {}
        return [_item(notification, links) for notification in notifications]

    def log_read(self, actor: Actor, notifications: Sequence[Any], query: str) -> None:
        """One access record per person (and organisation whose information it was) that a
        page disclosed events of (IHE BALP), written before the page is answered."""
        if not notifications:
            return
        positions = f"positions {notifications[0].id}-{notifications[-1].id}"
        records = [
            AccessRecord(
                interaction="event-feed",
                action="R",
                outcome=SUCCESS,
                actor=actor.as_event_data(),
                patient={"system": system, "value": value},
                custodian=custodian,
                entity=" ".join(entities),
                consents=[],
                query=query,
                detail=f"event feed, {positions}",
                recorded_at=now(),
            )
            for (system, value, custodian), entities in self._disclosed(notifications).items()
        ]
        try:
            self.application.save(*records)
        except Exception as error:
            raise access_log_unwritable(error) from None

    def _disclosed(
        self, notifications: Sequence[Any]
    ) -> dict[tuple[str, str, str | None], list[str]]:
        """The resources a page disclosed, by (person's system, value, custodian)."""
        access_record_topics = set(self.topics_of_type["AccessRecord"])
        resource_type_of = {
            n.originator_id: "AuditEvent"
            if n.topic in access_record_topics
            else self.application.resource_type
            for n in notifications
        }
        disclosed: dict[tuple[str, str, str | None], list[str]] = {}
        for originator_id, resource_type in resource_type_of.items():
            # From the stored creation event as it is, not the aggregate: a log that was
            # tampered with must still be readable, so that verification can name the break.
            created = self.application.recorder.select_events(originator_id, lte=1, limit=1)
            person, custodian = (
                _named_in_creation(created[0].state, CREATION_FIELDS[resource_type])
                if created
                else (None, None)
            )
            if person:
                key = (person["system"], person["value"], custodian)
                disclosed.setdefault(key, []).append(f"{resource_type}/{originator_id}")
        return disclosed

    def checkpoint(self, service: str) -> dict[str, Any]:
        position = self.head()
        head = self.chain_rows(position, position).get(position, (None, "0" * 64))[1]
        signed = Checkpoint(service, position, head, fhir_instant(now()))
        return {**signed.as_dict(), "jws": self.signer.sign(signed)}


def served_feed(request: Request) -> EventFeed:
    return request.app.state.event_feed


Feed = Annotated[EventFeed, Depends(served_feed)]
router = APIRouter(prefix="/events", tags=["audit"])


@router.get("")
def events(
    actor: EventReader,
    feed: Feed,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    event_type: Annotated[
        str | None, Query(alias="type", description="only one aggregate's events")
    ] = None,
) -> dict[str, Any]:
    if actor.role not in FEED_ROLES:
        raise FhirError(403, "forbidden", "the raw event log is for auditors and systems")
    if event_type is not None and event_type not in feed.topics_of_type:
        raise FhirError(400, "invalid", f"type is one of {', '.join(feed.topics_of_type)}")
    # Ids commit in order, so everything up to the head read first is there to be read;
    # a page shorter than the limit has seen all of it, even when a type filter skipped
    # most, and the cursor moves to that head.
    head = feed.head()
    notifications = feed.notifications(after, limit, head, event_type)
    feed.log_read(actor, notifications, f"after={after}&limit={limit}&type={event_type or ''}")
    full_page = len(notifications) == limit
    return {
        "events": feed.items(notifications),
        "next": notifications[-1].id if full_page else max(head, after),
        "head": head,
    }


@router.get("/checkpoint")
def checkpoint(actor: EventReader, feed: Feed, request: Request) -> dict[str, Any]:
    return feed.checkpoint(request.app.title)


@router.get("/checkpoint-keys")
def checkpoint_keys(feed: Feed) -> dict[str, Any]:
    return feed.signer.public_keys()


def _item(notification: Any, links: dict[int, tuple[str, str]]) -> dict[str, Any]:
    payload = json.loads(notification.state)
    stream_hash, log_hash = links.get(notification.id, (None, None))
    return {
        "position": notification.id,
        "aggregate_id": str(notification.originator_id),
        "version": notification.originator_version,
        "type": notification.topic,
        "time": _transcoded(payload.get("timestamp")),
        "author": _author(payload),
        "payload": payload,
        "stored_state": base64.b64encode(notification.state).decode(),
        "stream_hash": stream_hash,
        "log_hash": log_hash,
    }


def _named_in_creation(
    state: bytes, fields: CreationFields
) -> tuple[dict[str, str] | None, str | None]:
    """The person a creation event names (a plan's subject, a consent's or an access
    record's patient) and the organisation whose information it is (the plan's starting
    organisation, the consent's recorder's, the record's custodian)."""
    try:
        payload = json.loads(state)
    except ValueError:
        return None, None
    person = None
    named = _transcoded(payload.get(fields.person))
    if isinstance(named, dict) and {"system", "value"} <= set(named):
        person = {"system": str(named["system"]), "value": str(named["value"])}
    custodian: Any = payload
    for field in fields.custodian:
        custodian = _transcoded(custodian.get(field)) if isinstance(custodian, dict) else None
    return person, custodian if isinstance(custodian, str) and custodian else None


def _author(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Whoever the event names as its author, whatever the event calls the field."""
    for value in payload.values():
        if isinstance(value, dict) and {"subject", "role"} <= set(value):
            return value
    return None


def _transcoded(value: Any) -> Any:
    """A value as the library's JSON transcoder wrote it ({"_type_": ..., "_data_": ...})."""
    return value.get("_data_") if isinstance(value, dict) and "_data_" in value else value
