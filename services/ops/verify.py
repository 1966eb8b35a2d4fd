"""Recomputing the hash chain from the stored events and reporting the first break.

Reads the events and the chain either straight from a service's database (SQLite file or
PostgreSQL) or, for a reader granted the whole log, from a running service's event feed over
HTTP; the same check runs on both. An auditor without the whole log checks the chain's links,
their order and the signed head from the content-free view `GET /events/chain`
(`verify_chain_view`), which cannot show a changed content: docs/audit.md.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.common.audit.chain import GENESIS, chain_hash


@dataclass(frozen=True)
class StoredLink:
    """One position of the log as stored: the event (None if gone) and its link (None if none)."""

    position: int
    originator_id: UUID | None
    version: int | None
    topic: str | None
    state: bytes | None
    stream_hash: str | None
    log_hash: str | None


@dataclass(frozen=True)
class Break:
    position: int
    originator_id: UUID | None
    version: int | None
    reason: str

    def __str__(self) -> str:
        where = f"position {self.position}"
        if self.originator_id is not None:
            where += f" (aggregate {self.originator_id}, version {self.version})"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    events: int
    head: str
    first_break: Break | None
    # Checked from the hash view: links, order and head, not that contents match their hashes.
    links_only: bool = False

    @property
    def intact(self) -> bool:
        return self.first_break is None


def verify_links(
    links: Iterable[StoredLink], *, expected_head: tuple[int, str] | None = None
) -> Verification:
    """Recomputes both chains in log order. `expected_head` is a checkpoint's (position, hash),
    which must lie on the recomputed chain."""
    log_head = GENESIS
    stream_heads: dict[UUID, tuple[int, bytes]] = {}
    count = 0
    checkpoint_seen = expected_head is None

    def broken(link: StoredLink, reason: str) -> Verification:
        return Verification(
            count, log_head.hex(), Break(link.position, link.originator_id, link.version, reason)
        )

    for link in links:
        if link.state is None or link.originator_id is None or link.version is None:
            return broken(link, "the event at this position was removed (its chain link remains)")
        if link.log_hash is None or link.stream_hash is None:
            return broken(link, "the event has no chain link: the service did not write it")
        last_version, stream_head = stream_heads.get(link.originator_id, (0, GENESIS))
        if link.version != last_version + 1:
            return broken(link, f"the aggregate's version {last_version + 1} is missing before it")
        fields = (link.originator_id, link.version, link.topic or "", link.state)
        stream_hash = chain_hash(stream_head, *fields)
        log_head = chain_hash(log_head, *fields)
        if stream_hash.hex() != link.stream_hash or log_head.hex() != link.log_hash:
            return broken(link, "the stored event does not match its hash: it was changed")
        stream_heads[link.originator_id] = (link.version, stream_hash)
        count += 1
        if expected_head is not None and link.position == expected_head[0]:
            if link.log_hash != expected_head[1]:
                return broken(link, "the log differs from the signed checkpoint here")
            checkpoint_seen = True
    if not checkpoint_seen:
        assert expected_head is not None
        reason = "the log ends before the signed checkpoint's position: events were cut off"
        return Verification(count, log_head.hex(), Break(expected_head[0], None, None, reason))
    return Verification(count, log_head.hex(), None)


def database_links(
    engine: Engine, events_table: str, chain_table: str, page: int = 2000
) -> Iterator[StoredLink]:
    """Events and chain links merged by position, straight from the database."""
    position_column = "rowid" if engine.dialect.name == "sqlite" else "notification_id"
    after = 0
    with engine.connect() as connection:
        while True:
            events = {
                row[0]: row
                for row in connection.execute(
                    text(
                        f"SELECT {position_column}, originator_id, originator_version, topic, "
                        f"state FROM {events_table} WHERE {position_column} > :after "
                        f"ORDER BY {position_column} LIMIT :page"
                    ),
                    {"after": after, "page": page},
                )
            }
            last_event = max(events, default=None)
            chain_query = (
                f"SELECT notification_id, originator_id, originator_version, stream_hash, log_hash "
                f"FROM {chain_table} WHERE notification_id > :after"
                + (
                    " AND notification_id <= :upto"
                    if last_event is not None and len(events) == page
                    else ""
                )
                + " ORDER BY notification_id"
            )
            chain = {
                row[0]: row
                for row in connection.execute(
                    text(chain_query), {"after": after, "upto": last_event}
                )
            }
            positions = sorted(set(events) | set(chain))
            if not positions:
                return
            for position in positions:
                event, link = events.get(position), chain.get(position)
                originator = event[1] if event else link[1]
                yield StoredLink(
                    position=position,
                    originator_id=UUID(str(originator)),
                    version=event[2] if event else link[2],
                    topic=event[3] if event else None,
                    state=bytes(event[4]) if event else None,
                    stream_hash=link[3] if link else None,
                    log_hash=link[4] if link else None,
                )
            after = positions[-1]
            if len(events) < page:
                return


class NotWholeLog(Exception):
    """The feed answered with a caller's share, not the whole log."""


def paged_to_head(
    base_url: str, token: str, path: str, items: str, params: dict[str, int]
) -> Iterator[dict[str, Any]]:
    """The items of one of a running service's paged feed views (`/events`, `/events/chain`),
    up to its head when the reading began (reading the feed logs the access, which adds
    events after it)."""
    after, head = 0, None
    with httpx.Client(base_url=base_url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:  # fmt: skip
        while head is None or after < head:
            response = client.get(path, params={"after": after, **params})
            response.raise_for_status()
            body = response.json()
            head = body["head"] if head is None else head
            for item in body[items]:
                if item["position"] > head:
                    return
                yield item
            if not body[items]:
                return
            after = body["next"]


def feed_links(base_url: str, token: str, page: int = 1000) -> Iterator[StoredLink]:
    """Events and chain links from a running service's event feed."""
    for item in paged_to_head(base_url, token, "/events", "events", {"limit": page}):
        if "stored_state" not in item:
            raise NotWholeLog(
                "the token reads only its share of the log, without the stored bytes: "
                "--full needs a subject the service grants the whole log"
            )
        yield StoredLink(
            position=item["position"],
            originator_id=UUID(item["aggregate_id"]),
            version=item["version"],
            topic=item["type"],
            state=base64.b64decode(item["stored_state"]),
            stream_hash=item["stream_hash"],
            log_hash=item["log_hash"],
        )


@dataclass(frozen=True)
class ViewedLink:
    """One position of the content-free chain view (`GET /events/chain`)."""

    position: int
    originator_id: UUID
    version: int
    topic: str | None
    event_stored: bool
    previous_log_hash: str
    stream_hash: str | None
    log_hash: str | None


def verify_chain_view(
    links: Iterable[ViewedLink], *, expected_head: tuple[int, str] | None = None
) -> Verification:
    """Checks what the hash view shows without the contents: every link has its event and
    every event its link, each link is made on the one before it in the listing, each
    aggregate's versions follow one another from 1, and the chain passes through the signed
    checkpoint's head at its position."""
    log_head = GENESIS.hex()
    versions: dict[UUID, int] = {}
    count = 0
    checkpoint_seen = expected_head is None

    def broken(link: ViewedLink, reason: str) -> Verification:
        where = Break(link.position, link.originator_id, link.version, reason)
        return Verification(count, log_head, where, links_only=True)

    for link in links:
        if not link.event_stored:
            return broken(link, "the event at this position was removed (its chain link remains)")
        if link.log_hash is None or link.stream_hash is None:
            return broken(link, "the event has no chain link: the service did not write it")
        if link.previous_log_hash != log_head:
            return broken(link, "the link is not made on the one before it: the order changed")
        last_version = versions.get(link.originator_id, 0)
        if link.version != last_version + 1:
            return broken(link, f"the aggregate's version {last_version + 1} is missing before it")
        versions[link.originator_id] = link.version
        log_head = link.log_hash
        count += 1
        if expected_head is not None and link.position == expected_head[0]:
            if link.log_hash != expected_head[1]:
                return broken(link, "the log differs from the signed checkpoint here")
            checkpoint_seen = True
    if not checkpoint_seen:
        assert expected_head is not None
        reason = "the log ends before the signed checkpoint's position: events were cut off"
        where = Break(expected_head[0], None, None, reason)
        return Verification(count, log_head, where, links_only=True)
    return Verification(count, log_head, None, links_only=True)


def chain_view_links(base_url: str, token: str, page: int = 5000) -> Iterator[ViewedLink]:
    """The chain view of a running service, up to its head when the reading began."""
    for item in paged_to_head(base_url, token, "/events/chain", "links", {"_count": page}):
        yield ViewedLink(
            position=item["position"],
            originator_id=UUID(item["aggregate_id"]),
            version=item["version"],
            topic=item["type"],
            event_stored=item["event_stored"],
            previous_log_hash=item["previous_log_hash"],
            stream_hash=item["stream_hash"],
            log_hash=item["log_hash"],
        )
