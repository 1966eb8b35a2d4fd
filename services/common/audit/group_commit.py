"""Group commit: saves that arrive while a commit is under way share the next one.

A small write's cost is mostly its commit (the flush to disk, on PostgreSQL the table lock
too), and the event store takes one writer at a time, so concurrent requests queued behind each
other's commits: four clients were barely faster than one. Here the first save to arrive
becomes the leader and writes every save waiting at that moment in one transaction; saves
arriving meanwhile wait, and the first of them leads the next batch. No save waits for a batch
to fill: a lone save is written at once, as before, and the batching comes only from saves
that would otherwise have queued for the writer. Each caller returns only after the
transaction holding its events has committed (acknowledged = committed), and each gets its
own outcome: a save refused by the database (a version another request took, a business
identifier claimed before) fails alone, its events rolled back to a savepoint, and the others
in its batch commit. An error of the whole transaction (its commit, the connection) reaches
every save in it, as it would have reached each of them alone.

The recorders of `chain.py` write a batch (docs/decisions/0011).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from threading import Event, Lock
from typing import Any

from eventsourcing.persistence import StoredEvent


class Save:
    """One caller's events and the keyword arguments of its save, and what became of them."""

    __slots__ = ("error", "events", "kwargs", "leads", "notification_ids", "settled")

    def __init__(self, events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> None:
        self.events = events
        self.kwargs = kwargs
        self.notification_ids: Sequence[int] | None = None
        self.error: BaseException | None = None
        self.leads = False  # handed the lead of the next batch while it waited
        self.settled = Event()

    def outcome(self) -> Sequence[int] | None:
        if self.error is not None:
            raise self.error
        return self.notification_ids


class GroupCommit:
    """Hands saves to `write_batch`, which writes them in one transaction and sets each one's
    `notification_ids` or `error` (raising for the transaction as a whole)."""

    def __init__(self, write_batch: Callable[[list[Save]], None]) -> None:
        self._write_batch = write_batch
        self._lock = Lock()
        self._waiting: list[Save] = []
        self._writing = False
        # Batches written and saves in them: what the tests and the benchmarks look at.
        self.batches = 0
        self.saves = 0

    def save(self, events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        save = Save(events, kwargs)
        with self._lock:
            self._waiting.append(save)
            leads = not self._writing
            self._writing = True
        if not leads:
            save.settled.wait()
            if not save.leads:
                return save.outcome()
        self._lead()
        return save.outcome()

    def _lead(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            self._write_batch(batch)
        except BaseException as error:  # the transaction failed: so did every save in it
            for save in batch:
                save.error = error
        finally:
            with self._lock:
                self.batches += 1
                self.saves += len(batch)
                if self._waiting:  # the next leader writes while this batch's callers answer
                    self._waiting[0].leads = True
                    self._waiting[0].settled.set()
                else:
                    self._writing = False
            for save in batch:
                save.settled.set()
