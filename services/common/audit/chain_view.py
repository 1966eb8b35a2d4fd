"""The hash chain as a view without content: for each position of the log, the event's
aggregate id, version and type (never its payload, its author or its time), whether the event
is still stored, and its chain hashes (the log hash it links to, its own, and its stream hash).

From it an auditor of any organisation checks the chain's links, their order and the signed
head (`services/ops/verify.py`, `verify_chain_view`); only the database verification, which
recomputes every hash from the stored bytes, can show that no event's content was changed
(docs/audit.md says exactly what each proves)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.common.audit.chain import GENESIS


@dataclass(frozen=True)
class ChainPage:
    links: list[dict[str, Any]]
    next: int  # the cursor for the next page: its `after`
    head: int  # the last position, of an event or of a chain link, when the page was read


def chain_page(
    recorder: Any, engine: Engine, chain_table: str, after: int, count: int
) -> ChainPage:
    """The positions after `after`, at most `count`, of events and chain links merged: a
    link whose event was removed, and an event without a link, both show."""
    with engine.connect() as connection:
        chain = {
            row[0]: row
            for row in connection.execute(
                text(
                    "SELECT notification_id, originator_id, originator_version, stream_hash, "
                    f"log_hash FROM {chain_table} WHERE notification_id > :after "
                    "ORDER BY notification_id LIMIT :count"
                ),
                {"after": after, "count": count},
            )
        }
        previous = connection.execute(
            text(
                f"SELECT log_hash FROM {chain_table} WHERE notification_id <= :after "
                "ORDER BY notification_id DESC LIMIT 1"
            ),
            {"after": after},
        ).scalar()
        last_link = connection.execute(
            text(f"SELECT MAX(notification_id) FROM {chain_table}")
        ).scalar()
    events = {
        n.id: n
        for n in recorder.select_notifications(start=after, limit=count, inclusive_of_start=False)
    }
    head = max(recorder.max_notification_id() or 0, last_link or 0, after)
    # Either source may stop short of the other: read both up to where neither stopped.
    full = [max(found) for found in (chain, events) if len(found) == count]
    cut = min(full, default=None)
    positions = sorted(p for p in set(chain) | set(events) if cut is None or p <= cut)
    links = []
    previous_hash = previous or GENESIS.hex()
    for position in positions:
        event, link = events.get(position), chain.get(position)
        links.append(
            {
                "position": position,
                "aggregate_id": str(event.originator_id if event else link[1]),
                "version": event.originator_version if event else link[2],
                "type": event.topic if event else None,
                "event_stored": event is not None,
                "previous_log_hash": previous_hash,
                "log_hash": link[4] if link else None,
                "stream_hash": link[3] if link else None,
            }
        )
        previous_hash = link[4] if link else previous_hash
    next_after = positions[-1] if cut is not None and positions else head
    return ChainPage(links, next_after, head)
