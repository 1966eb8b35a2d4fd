"""`GET /events`: the stored events in commit order, paged by a cursor, so a history can be
replayed from position 0 — each caller's share of them (`feed_access.py`), every event as
stored only for a reader the service's configuration grants the whole log;
`GET /events/chain`, the hash chain without content, from which anyone auditing the service
verifies the log's links (`chain_view.py`); and `GET /events/checkpoint`, its signed head."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import text
from sqlalchemy.engine import Engine

from contracts.actor import Actor
from contracts.events import CREATION_FIELDS, CreationFields
from services.common.access_log import SUCCESS, AccessRecord
from services.common.application import VersionedApplication
from services.common.audit.chain_view import ChainPage, chain_page
from services.common.audit.checkpoints import Checkpoint, CheckpointSigner
from services.common.audit.feed_access import (
    WITHHELD_REASON,
    AuditorRule,
    EntryKind,
    FeedEvent,
    FeedRule,
    RecordSystemRule,
    Verdict,
    no_entry_kind,
    transcoded,
    whole_log,
)
from services.common.auth.dependency import authorize
from services.common.auth.scopes import CONTEXT_OF_ROLE, permits
from services.common.disclosure import Discloser, Disclosure
from services.common.domain import NotFound
from services.common.fhir_api import FhirError, access_log_unwritable
from services.common.fhir_time import fhir_instant, now
from services.common.personal_data.mapper import PersonalDataMapper

# Each caller's share of the log is filtered by the same rules as the API, so the scopes that
# read resources (`system/*.rs`) open it; the whole log needs a grant in the configuration
# and a scope naming `Event` itself.
EventReader = Annotated[Actor, Depends(authorize("Event", "r"))]
FEED_ROLES = ("auditor", "integration")
# The largest notification id the stores hold (a BIGINT); a larger cursor would overflow them.
MAX_POSITION = 2**63 - 1
# (a person's system, value, the custodian of the record) -> what a page disclosed of them
Disclosed = dict[tuple[str, str, str | None], tuple[list[str], set[str]]]
# The person and the custodian a record's creation event names.
Named = tuple[dict[str, str] | None, str | None]


@dataclass(frozen=True)
class Shown:
    """An event of a page that the caller's rule shows."""

    notification: Any
    payload: dict[str, Any]
    verdict: Verdict
    person: dict[str, str] | None
    record_custodian: str | None


def event_topics(aggregate_class: type[Any]) -> list[str]:
    """The topics of every event class an aggregate class has."""
    return [
        get_topic(member)
        for member in vars(aggregate_class).values()
        if isinstance(member, type) and issubclass(member, aggregate_class.Event)
    ]


class EventFeed:
    """What the feed's routes read: one service's event store, its chain table, its checkpoint
    key, the resource type's disclosure rule (and those of the other aggregates the store
    holds, by resource type: a record with no rule is never disclosed) and who is granted the
    whole log. An app serves it by `app.state.event_feed = EventFeed(...)` and
    `app.include_router(router)`."""

    def __init__(
        self,
        application: VersionedApplication,
        engine: Engine,
        signer: CheckpointSigner,
        disclose: Discloser,
        whole_log_readers: frozenset[str] = frozenset(),
        entry_kind: EntryKind = no_entry_kind,
        other_disclosers: Mapping[str, Discloser] | None = None,
    ) -> None:
        self.application = application
        self.engine = engine
        self.signer = signer
        self.disclosers: dict[type[Any], Discloser] = {application.aggregate_class: disclose}
        for resource_type, discloser in (other_disclosers or {}).items():
            self.disclosers[application.other_aggregates[resource_type]] = discloser
        self.whole_log_readers = whole_log_readers
        self.entry_kind = entry_kind
        self.chain_table: str = application.recorder.chain_table  # type: ignore[attr-defined]
        aggregate_types = {cls.__name__: cls for cls in (application.aggregate_class, AccessRecord)}
        self.topics_of_type = {name: event_topics(cls) for name, cls in aggregate_types.items()}
        self.access_record_topics = frozenset(self.topics_of_type["AccessRecord"])
        self.other_resource_types = {
            topic: resource_type
            for resource_type, cls in application.other_aggregates.items()
            for topic in event_topics(cls)
        }

    def reads_whole_log(self, actor: Actor) -> bool:
        """Granted by configuration to the subject, and asked for with a scope naming `Event`
        (a wildcard scope never reaches the whole log)."""
        context = CONTEXT_OF_ROLE[actor.role]
        return actor.subject in self.whole_log_readers and permits(
            actor.scopes, context, "Event", "r", wildcard=False
        )

    def rule_for(self, actor: Actor) -> FeedRule:
        if self.reads_whole_log(actor):
            return whole_log
        if actor.role == "auditor":
            return AuditorRule(actor.organization)
        return RecordSystemRule(actor, self.disclose, self.record, self.entry_kind)

    def record(self, aggregate_id: UUID) -> Any:
        """The record an event belongs to, whichever of the store's aggregate classes it is."""
        try:
            return self.application.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(str(aggregate_id)) from None

    def disclose(self, record: Any, actor: Actor) -> Disclosure:
        """The disclosure rule of the record's own type: the one the API applies to it."""
        for cls, discloser in self.disclosers.items():
            if isinstance(record, cls):
                return discloser(record, actor)
        raise NotFound(str(getattr(record, "id", "")))

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

    def chain(self, after: int, count: int) -> ChainPage:
        return chain_page(self.application.recorder, self.engine, self.chain_table, after, count)

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

    def payload(self, stored: Any) -> Any:
        """The event's stored JSON, its personal fields opened where they were sealed
        (docs/decisions/0007); raises ValueError where the stored bytes are not JSON."""
        mapper = self.application.mapper
        if isinstance(mapper, PersonalDataMapper):
            return mapper.opened_payload(stored)
        return json.loads(stored.state)

    def judged(self, notifications: Sequence[Any], rule: FeedRule) -> list[Shown]:
        """The page's events the rule shows, each with its payload and the verdict."""
        creations: dict[UUID, Named] = {}
        shown = []
        for notification in notifications:
            payload = self.payload(notification)
            person, record_custodian = self._named(notification, creations)
            verdict = rule(
                FeedEvent(
                    aggregate_id=notification.originator_id,
                    topic=notification.topic,
                    author=event_author(payload),
                    payload=payload,
                    access_record=notification.topic in self.access_record_topics,
                    record_custodian=record_custodian,
                )
            )
            if verdict.shown:
                shown.append(Shown(notification, payload, verdict, person, record_custodian))
        return shown

    def items(self, page: Sequence[Shown], whole: bool) -> list[dict[str, Any]]:
        first, last = (page[0].notification.id, page[-1].notification.id) if page else (0, -1)
        links = self.chain_rows(first, last) if page else {}
        return [
            _item(shown.notification, shown.payload, links, content=shown.verdict.content,
                  stored=whole)
            for shown in page
        ]  # fmt: skip

    def log_read(self, actor: Actor, page: Sequence[Shown], query: str) -> None:
        """One access record per person (and organisation whose record it was) that a page
        disclosed events of, with the consents relied on (IHE BALP), as a search logs its
        matches; written before the page is answered. A page that showed nothing is not
        logged: its record would be the next page's event, and a follower polling the feed
        would log forever."""
        if not page:
            return
        positions = f"positions {page[0].notification.id}-{page[-1].notification.id}"
        records = [
            AccessRecord(
                interaction="event-feed",
                action="R",
                outcome=SUCCESS,
                actor=actor.as_event_data(),
                patient={"system": system, "value": value},
                custodian=custodian,
                entity=" ".join(entities),
                consents=sorted(consents),
                query=query,
                detail=f"event feed, {positions}",
                recorded_at=now(),
            )
            for (system, value, custodian), (entities, consents) in self._disclosed(page).items()
        ]
        try:
            self.application.save(*records)
        except Exception as error:
            raise access_log_unwritable(error) from None

    def _disclosed(self, page: Sequence[Shown]) -> Disclosed:
        """The resources a page disclosed, by (person's system, value, custodian)."""
        disclosed: Disclosed = {}
        for shown in page:
            if not shown.person:
                continue
            entities, consents = disclosed.setdefault(
                (shown.person["system"], shown.person["value"], shown.record_custodian),
                ([], set()),
            )
            entity = f"{self._resource_type(shown.notification)}/{shown.notification.originator_id}"
            if entity not in entities:
                entities.append(entity)
            consents.update(shown.verdict.consents)
        return disclosed

    def _resource_type(self, notification: Any) -> str:
        if notification.topic in self.access_record_topics:
            return "AuditEvent"
        return self.other_resource_types.get(notification.topic, self.application.resource_type)

    def _named(self, notification: Any, creations: dict[UUID, Named]) -> Named:
        """The person and custodian the event's record names, from its stored creation event
        as it is, not the aggregate: a log that was tampered with must still be readable, so
        that verification can name the break."""
        originator_id = notification.originator_id
        if originator_id not in creations:
            fields = CREATION_FIELDS[self._resource_type(notification)]
            created = self.application.recorder.select_events(originator_id, lte=1, limit=1)
            try:
                payload = self.payload(created[0]) if created else None
            except ValueError:  # tampered: named by nobody, verification names the break
                payload = None
            creations[originator_id] = _named_in_creation(payload, fields)
        return creations[originator_id]

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
        raise FhirError(403, "forbidden", "the event feed is for auditors and systems")
    if event_type is not None and event_type not in feed.topics_of_type:
        raise FhirError(400, "invalid", f"type is one of {', '.join(feed.topics_of_type)}")
    # Ids commit in order, so everything up to the head read first is there to be read;
    # a page shorter than the limit has seen all of it, even when a type filter or the
    # caller's share skipped most, and the cursor moves to that head.
    head = feed.head()
    notifications = feed.notifications(after, limit, head, event_type)
    rule = feed.rule_for(actor)
    page = feed.judged(notifications, rule)
    feed.log_read(actor, page, f"after={after}&limit={limit}&type={event_type or ''}")
    full_page = len(notifications) == limit
    return {
        "events": feed.items(page, whole=rule is whole_log),
        "next": notifications[-1].id if full_page else max(head, after),
        "head": head,
    }


def chain_reader(actor: EventReader, feed: Feed) -> Actor:
    """The chain and its checkpoints hold no personal content: every auditor (of any
    organisation, as the log is one for all) and every whole-log reader may verify them."""
    if actor.role != "auditor" and not feed.reads_whole_log(actor):
        raise FhirError(403, "forbidden", "the hash chain is for auditors")
    return actor


ChainReader = Annotated[Actor, Depends(chain_reader)]


@router.get("/chain")
def chain(
    _: ChainReader,
    feed: Feed,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
    count: Annotated[int, Query(alias="_count", ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    page = feed.chain(after, count)
    return {"links": page.links, "next": page.next, "head": page.head}


@router.get("/checkpoint")
def checkpoint(_: ChainReader, feed: Feed, request: Request) -> dict[str, Any]:
    return feed.checkpoint(request.app.title)


@router.get("/checkpoint-keys")
def checkpoint_keys(feed: Feed) -> dict[str, Any]:
    return feed.signer.public_keys()


def _item(
    notification: Any,
    payload: dict[str, Any],
    links: dict[int, tuple[str, str]],
    *,
    content: bool,
    stored: bool,
) -> dict[str, Any]:
    """An event as the feed lists it: with its content, or with it withheld (position, record
    and type only); the stored bytes only in the whole log."""
    stream_hash, log_hash = links.get(notification.id, (None, None))
    item: dict[str, Any] = {
        "position": notification.id,
        "aggregate_id": str(notification.originator_id),
        "version": notification.originator_version,
        "type": notification.topic,
    }
    if not content:
        return {**item, "withheld": WITHHELD_REASON, "payload": None}
    item |= {
        "time": transcoded(payload.get("timestamp")),
        "author": event_author(payload),
        "payload": payload,
    }
    if stored:
        item["stored_state"] = base64.b64encode(notification.state).decode()
    return {**item, "stream_hash": stream_hash, "log_hash": log_hash}


def _named_in_creation(payload: Any, fields: CreationFields) -> Named:
    """The person a creation event names (a plan's subject, a consent's or an access
    record's patient) and the organisation whose information it is (the plan's starting
    organisation, the consent's recorder's, the record's custodian)."""
    if not isinstance(payload, dict):
        return None, None
    person = None
    named = transcoded(payload.get(fields.person))
    if isinstance(named, dict) and {"system", "value"} <= set(named):
        person = {"system": str(named["system"]), "value": str(named["value"])}
    custodian: Any = payload
    for field in fields.custodian:
        custodian = transcoded(custodian.get(field)) if isinstance(custodian, dict) else None
    return person, custodian if isinstance(custodian, str) and custodian else None


def event_author(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Whoever the event names as its author, whatever the event calls the field."""
    for value in payload.values():
        if isinstance(value, dict) and {"subject", "role"} <= set(value):
            return value
    return None
