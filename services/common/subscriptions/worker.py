"""The delivery worker: a thread of each replica that follows the event log (and the
time-driven happenings) for every subscription and tells the receivers.

Each tick claims the subscriptions with work (on PostgreSQL with `FOR UPDATE SKIP LOCKED`,
so of several replicas exactly one works on a subscription at a time) and, in order:
handshakes of new subscriptions; redelivery of notifications not yet acknowledged (all of a
subscription's, in one bundle, when its backoff has passed); then new events, one at a time
in log order: each subscriber's notification is numbered, the access records of all of the
event's notifications saved in one transaction, and the notifications posted side by side;
heartbeats last. A subscription whose delivery failed takes no new events until its
notifications are through, so each receiver gets them in order. The progress is written when
the claim ends; after a kill -9 the tick is done again and its notifications are sent again
with the same numbers (at least once: the receiver drops a number it has).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from services.common.access_log import AccessRecord
from services.common.audit.feed import event_topics
from services.common.fhir_api import access_log_unwritable
from services.common.fhir_time import fhir_instant, now
from services.common.repeated_failure import RepeatedFailure
from services.common.subscriptions.backoff import next_attempt
from services.common.subscriptions.delivery import Sender
from services.common.subscriptions.judging import Moment, Published
from services.common.subscriptions.notification import (
    EVENT,
    HANDSHAKE,
    HEARTBEAT,
    notification_bundle,
)
from services.common.subscriptions.store import (
    Claim,
    NotificationRow,
    SubscriptionRow,
    SubscriptionStore,
)
from services.common.subscriptions.topics import EVENTS, TIMED

log = logging.getLogger("sip.subscriptions")
BATCH = 50  # events a tick judges; notifications a redelivery bundles


class DeliveryWorker:
    def __init__(
        self,
        store: SubscriptionStore,
        published: Published,
        sender: Sender,
        *,
        interval_seconds: float = 0.25,
        timed_check_seconds: float = 60.0,
    ) -> None:
        self.store, self.published, self.sender = store, published, sender
        self.application = published.access.application
        self._topics = event_topics(self.application.aggregate_class)
        self._interval, self._timed_every = interval_seconds, timed_check_seconds
        self._next_timed_check = 0.0
        # (log position looked at, last event of the resource type at or before it): the
        # access records of each delivery are in the log too; they are no subscriber's concern,
        # and without this every delivery would set off a round of cursor moves of its own.
        self._relevant = (0, 0)
        self.delivering = RepeatedFailure(log, "subscription delivery")
        self._stopping = threading.Event()
        # Set after each commit of this process (VersionedApplication.after_commit): its own
        # writes are delivered at once, another replica's within the polling interval, and an
        # idle service asks its database four times a second rather than a hundred. Only
        # while a subscription is on (as the last tick found): without one a commit is no
        # one's concern, and each write would cost a tick of queries (issue 15); a new
        # subscription is found within the interval.
        self._woken = threading.Event()
        self._subscribed = True  # until the first tick looks
        self.application.after_commit.append(self._committed)
        self._thread = threading.Thread(target=self._run, name="subscriptions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._woken.set()
        self._thread.join(timeout=10)
        self.sender.close()

    def _committed(self) -> None:
        if self._subscribed:
            self._woken.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                worked = self.tick()
                self.delivering.succeeded()
            except Exception as error:  # the database or the log: the tick is done again
                self.delivering.failed(error)
                worked = False
            if not worked:
                self._woken.wait(self._interval)
                self._woken.clear()

    def tick(self) -> bool:
        """One round of work; False when there was none."""
        at = time.time()
        self._check_timed(at)
        self._subscribed = self.store.any_live()
        if not self._subscribed:  # one query rather than the heads' three
            return False
        events_head = self._relevant_head()
        timed_head = self.store.timed_head()
        if not self.store.has_work(events_head, timed_head, at):
            return False
        with self.store.claim(events_head, timed_head, at) as claim:
            if not claim.rows:
                return False
            moment = Moment(self.published)
            self._handshakes(claim, at)
            self._redeliveries(claim, moment, at)
            self._new_events(claim, moment, events_head, at)
            self._new_happenings(claim, moment, timed_head, at)
            self._heartbeats(claim, at)
        return True

    def _relevant_head(self) -> int:
        """The position of the newest event of the resource type (not an access record)."""
        looked_at, relevant = self._relevant
        head = self.application.recorder.max_notification_id() or 0
        if head > looked_at:
            newer = self.application.recorder.select_notifications(
                start=looked_at, limit=1, stop=head, topics=self._topics,
                inclusive_of_start=False,
            )  # fmt: skip
            if newer:  # one is enough to know there is work; the tick reads up to the head
                relevant = head
            self._relevant = (head, relevant)
        return relevant

    def _check_timed(self, at: float) -> None:
        check = self.published.timed_check
        if check is None or at < self._next_timed_check:
            return
        self._next_timed_check = at + self._timed_every
        noted_at = fhir_instant(now())
        for topic, aggregate_id, key in check():
            self.store.note_happening(topic, aggregate_id, key, noted_at)

    def _handshakes(self, claim: Claim, at: float) -> None:
        rows = [row for row in claim.rows.values() if row.status == "requested"]
        results = self.sender.post_all(
            [(row, notification_bundle(row, HANDSHAKE, [])) for row in rows]
        )
        for row in rows:
            error = results[row.id]
            claim.change(_succeeded(row, at) if error is None else _failed(row, error, at))

    def _redeliveries(self, claim: Claim, moment: Moment, at: float) -> None:
        """Every notification not acknowledged yet, in one bundle per subscription."""
        rows = [r for r in claim.rows.values() if r.pending and r.status in ("active", "error")]
        posts, records = [], []
        for row in rows:
            pending = self.store.notifications(
                row.id,
                row.delivered_through + 1,
                min(row.events_count, row.delivered_through + BATCH),
            )
            told = [moment.told(row, notification) for notification in pending]
            records += [record for _, record in told if record is not None]
            posts.append((row, notification_bundle(row, EVENT, [t for t, _ in told]), pending))
        self.record(records)
        results = self.sender.post_all([(row, bundle) for row, bundle, _ in posts])
        for row, _, pending in posts:
            error = results[row.id]
            if error is not None:
                claim.change(_failed(row, error, at))
            elif pending:
                delivered = pending[-1].event_number
                claim.change(_succeeded(row, at, delivered_through=delivered))

    def _eligible(self, claim: Claim, source: str, at: float) -> list[str]:
        """The subscriptions that take new events now: active, nothing waiting, no backoff."""
        return [
            row.id
            for row in claim.rows.values()
            if self.published.topic(row.topic) is not None
            and self.published.topic(row.topic).source == source  # type: ignore[union-attr]
            and row.status == "active"
            and not row.pending
            and (row.next_attempt_at is None or row.next_attempt_at <= at)
        ]

    def _new_events(self, claim: Claim, moment: Moment, head: int, at: float) -> None:
        ids = self._eligible(claim, EVENTS, at)
        if not ids:
            return
        start = min(claim.rows[i].cursor for i in ids)
        stored = self.application.recorder.select_notifications(
            start=start, limit=BATCH, stop=head, topics=self._topics, inclusive_of_start=False
        )
        for event in stored:
            rows = [claim.rows[i] for i in ids if claim.rows[i].cursor < event.id]
            numbered = [(row, moment.event_matches(row, event)) for row in rows]
            self._tell(claim, moment, numbered, ids, at)
            _advance(claim, ids, event.id)
        _advance(claim, ids, head if len(stored) < BATCH else stored[-1].id)

    def _new_happenings(self, claim: Claim, moment: Moment, head: int, at: float) -> None:
        ids = self._eligible(claim, TIMED, at)
        if not ids:
            return
        start = min(claim.rows[i].cursor for i in ids)
        for happening in self.store.happenings(start, BATCH):
            rows = [claim.rows[i] for i in ids if claim.rows[i].cursor < happening.id]
            numbered = [(row, moment.happening_matches(row, happening)) for row in rows]
            self._tell(claim, moment, numbered, ids, at)
            _advance(claim, ids, happening.id)
        _advance(claim, ids, head)

    def _tell(
        self,
        claim: Claim,
        moment: Moment,
        numbered: list[tuple[SubscriptionRow, NotificationRow | None]],
        ids: list[str],
        at: float,
    ) -> None:
        """One event's notifications: numbered, their access records saved in one
        transaction before any leaves, then posted side by side."""
        posts, records = [], []
        for row, notification in numbered:
            if notification is None:
                continue
            row = row.with_(events_count=notification.event_number)
            claim.numbered(notification)
            claim.change(row)
            told, record = moment.told(row, notification)
            if record is not None:
                records.append(record)
            posts.append((row, notification_bundle(row, EVENT, [told]), notification))
        if not posts:
            return
        self.record(records)
        results = self.sender.post_all([(row, bundle) for row, bundle, _ in posts])
        for row, _, notification in posts:
            error = results[row.id]
            if error is None:
                claim.change(_succeeded(row, at, delivered_through=row.events_count))
            else:  # it waits, numbered, for the backoff; later events wait behind it
                claim.change(_failed(row, error, at).with_(cursor=notification.position))
                ids.remove(row.id)

    def _heartbeats(self, claim: Claim, at: float) -> None:
        rows = [
            row
            for row in claim.rows.values()
            if row.status == "active"
            and not row.pending
            and row.heartbeat_due_at is not None
            and row.heartbeat_due_at <= at
        ]
        results = self.sender.post_all(
            [(row, notification_bundle(row, HEARTBEAT, [])) for row in rows]
        )
        for row in rows:
            error = results[row.id]
            claim.change(_succeeded(row, at) if error is None else _failed(row, error, at))

    def record(self, records: list[AccessRecord]) -> None:
        """The access records of what is about to be told, in one transaction: nothing is
        told that is not logged (fail closed)."""
        if not records:
            return
        try:
            self.application.save(*records)
        except Exception as error:
            raise access_log_unwritable(error) from None


def _advance(claim: Claim, ids: list[str], position: int) -> None:
    for subscription_id in ids:
        row = claim.rows[subscription_id]
        if row.cursor < position:
            claim.change(row.with_(cursor=position))


def _succeeded(row: SubscriptionRow, at: float, **progress: Any) -> SubscriptionRow:
    return row.with_(
        **progress,
        status="active",
        attempts=0,
        failing_since=None,
        next_attempt_at=None,
        last_error=None,
        heartbeat_due_at=at + row.heartbeat_seconds if row.heartbeat_seconds else None,
    )


def _failed(row: SubscriptionRow, error: str, at: float) -> SubscriptionRow:
    attempts = row.attempts + 1
    failing_since = row.failing_since or at
    retry_at = next_attempt(attempts, failing_since, at)
    if retry_at is None:
        return row.with_(
            status="off",
            attempts=attempts,
            next_attempt_at=None,
            last_error=f"gave up after 48 hours of failures; last: {error}",
        )
    status = "requested" if row.status == "requested" else "error"
    return row.with_(
        status=status,
        attempts=attempts,
        failing_since=failing_since,
        next_attempt_at=retry_at,
        last_error=error,
    )


def describe(row: SubscriptionRow) -> dict[str, Any]:
    """The progress of a subscription, for logs and tests."""
    return {"status": row.status, "events": row.events_count, "delivered": row.delivered_through}
