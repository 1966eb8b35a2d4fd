"""The data keys an event write seals under, made and checked in the events' own transaction
(docs/decisions/0007), as business identifiers are claimed there.

The mapper learns a person's live key (or makes a new one) before the write; the recorder then,
inside the write transaction: inserts each new key with the events, refusing if another
writer made that person's key of that class meanwhile; and checks each existing key is still
live, on PostgreSQL holding a share lock on its row until the commit. So an erasure either
commits before the write (which then fails, and is retried under a fresh key) or waits for it
(and erases what it wrote with the rest): no entry is ever stored under a key already erased.

Kept apart from keys.py so that the recorders (services/common/audit/chain.py) can use it
without importing the storage they are part of."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import StoredEvent

KEY_COLUMNS = (
    "key_id",
    "purpose",
    "person_index",
    "retention_class",
    "wrapped_key",
    "master_key_id",
    "created_at",
)
# In the recorders' parameter style (%s); the SQLite one writes `?`. A key another writer
# stored first for the same person and class inserts nothing and returns no row.
INSERT_KEY = (
    f"INSERT INTO personal_data_keys ({', '.join(KEY_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(KEY_COLUMNS))}) ON CONFLICT DO NOTHING RETURNING key_id"
)
KEY_OF_PERSON = (
    "SELECT key_id FROM personal_data_keys WHERE person_index = %s AND retention_class = %s"
)


@functools.cache  # one statement per count of keys, as the driver's statement cache keeps it
def live_keys(count: int, columns: str = "key_id") -> str:
    """The `columns` of those of `count` keys (by id) that are live, not erased."""
    return (
        f"SELECT {columns} FROM personal_data_keys WHERE wrapped_key IS NOT NULL "
        f"AND key_id IN ({', '.join(['%s'] * count)})"
    )


@dataclass(frozen=True)
class KeyUse:
    key_id: str
    # The row to insert with the events, when this write makes the key (the person's first
    # entry of the class); None: a key already stored, checked live in the transaction.
    new_row: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class SealedStoredEvent(StoredEvent):
    """A stored event with the data keys its sealed fields need (never stored itself)."""

    data_keys: tuple[KeyUse, ...] = field(default=(), compare=False)


class DataKeyChanged(RuntimeError):
    """The key a write sealed under was erased, or another writer made the person's key
    first, between the mapper's look-up and the write's transaction: the write was rolled
    back whole and is to be sealed again."""


# Sends a statement and gives a way to read its rows later: on PostgreSQL in pipeline mode the
# answer comes back with the next round trip the write makes anyway (the events' insert).
Rows = list[tuple[Any, ...]]
Send = Callable[[str, tuple[Any, ...]], Callable[[], Rows]]


class DataKeyChecks:
    """What a write's transaction asks about the data keys its events seal under: each key it
    makes inserted, each key it uses checked live (`lock` appended to that query: PostgreSQL's
    ` FOR SHARE`). The statements are sent at once (`send`) and judged once answered (`judge`)."""

    def __init__(self, stored_events: Sequence[StoredEvent], send: Send, *, lock: str = ""):
        new: dict[str, tuple[Any, ...]] = {}
        existing: set[str] = set()
        for stored in stored_events:
            for use in getattr(stored, "data_keys", ()):
                if use.new_row is not None:
                    new[use.key_id] = use.new_row
                else:
                    existing.add(use.key_id)
        self._lock = lock
        self._inserted = [(key_id, row, send(INSERT_KEY, row)) for key_id, row in new.items()]
        used = tuple(sorted(existing - new.keys()))
        self._used = used
        self._live = send(live_keys(len(used)) + lock, used) if used else None

    def judge(
        self,
        run: Callable[[str, tuple[Any, ...]], Rows],
        abort: Callable[[str], None] = lambda reason: None,
    ) -> None:
        """Raises DataKeyChanged where another writer made a person's key first or a key
        used was erased; `run(sql, params)` asks what only a refusal needs asked, at once;
        `abort(reason)` makes the database itself fail the transaction first, where the
        recorder would otherwise commit it in spite of the exception (the library's PostgreSQL
        one does)."""
        used, live = set(self._used), set()
        if self._live is not None:
            live = {row[0] for row in self._live()}
        for key_id, row, inserted in self._inserted:
            if inserted():
                continue
            holders = [found[0] for found in run(KEY_OF_PERSON, (row[2], row[3]))]
            if holders != [key_id]:
                abort("another writer made this person's key first")
                raise DataKeyChanged("another writer made this person's key first")
            # Stored by another write of this process meanwhile: checked live as any used.
            used.add(key_id)
            live |= {found[0] for found in run(live_keys(1) + self._lock, (key_id,))}
        if live != used:
            reason = f"data keys erased meanwhile: {', '.join(sorted(used - live))}"
            abort(reason)
            raise DataKeyChanged(reason)


def check_data_keys(
    stored_events: Sequence[StoredEvent],
    run: Callable[[str, tuple[Any, ...]], Rows],
    *,
    lock: str = "",
    abort: Callable[[str], None] = lambda reason: None,
) -> None:
    """Inside the write transaction: inserts the keys the events made, checks those they used
    are live, each statement answered before the next is sent (`run(sql, params)` executes
    and returns rows); raises DataKeyChanged otherwise (DataKeyChecks)."""

    def send(sql: str, params: tuple[Any, ...]) -> Callable[[], Rows]:
        rows = run(sql, params)
        return lambda: rows

    DataKeyChecks(stored_events, send, lock=lock).judge(run, abort)
