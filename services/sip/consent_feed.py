"""The SIP service follows the consent service's event feed.

A background thread pulls `GET /events?after=<position>` from the consent service with the
SIP service's own token, a few times a second. When a consent is withdrawn or marked entered
in error, every plan that relied on it records so (`Plan.ConsentWithdrawn`), and the permit
cache forgets it at once; a new consent or block for a person makes the cache forget that
person. The position of the plan notes is kept in the SIP database, so a restart resumes where
it stopped and replicas share it; each process's permit cache has a cursor of its own in
memory, so every replica sees every consent event for its own cache, however the replicas'
polls interleave.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
from eventsourcing.persistence import IntegrityError as ConcurrencyError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from contracts.consent_events import (
    CONSENT_AGGREGATE,
    CONSENT_ENDING_EVENTS,
    CONSENT_GIVEN,
    GIVEN_PATIENT,
    consent_event_name,
)
from services.common.access_log import WriteContext, writing
from services.common.fhir_time import now
from services.common.persistence import SQLITE_IMMEDIATE
from services.common.projection import (
    create_tracking_row,
    projection_tracking,
    record_failure,
    tracked_position,
)
from services.common.repeated_failure import RepeatedFailure
from services.sip.application import SipPlans
from services.sip.consent_gate import CachingConsentGate
from services.sip.projections import PlanIndex

log = logging.getLogger("sip.consent_feed")
# Failures of the network, the database or a concurrent writer: the page is handled again.
_RETRIED_LATER = (httpx.HTTPError, OperationalError, InterfaceError, ConcurrencyError)
FEED = "consent_feed"
SERVICE_ACTOR = {
    "subject": "sip-service",
    "role": "integration",
    "organization": None,
    "unit": None,
}


class ConsentFeedFollower:
    def __init__(
        self,
        *,
        consent_url: str,
        token_source: Callable[[], str],
        plans: SipPlans,
        index: PlanIndex,
        engine: Engine,
        cache: CachingConsentGate,
        interval_seconds: float = 0.2,
    ) -> None:
        self._client = httpx.Client(base_url=consent_url, timeout=2.0)
        self._token_source = token_source
        self._plans, self._index, self._cache = plans, index, cache
        self._reader = engine
        self._engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self._interval = interval_seconds
        self._cache_cursor: int | None = None  # this process's own, for its permit cache
        # While the consent service is down every poll fails: warn once, then every 30 s.
        self.reaching = RepeatedFailure(log, "consent feed")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consent-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._client.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self.poll():
                self._stopping.wait(self._interval)

    def poll(self) -> bool:
        """Follows the feed to its head; False when the page is to be read again at once."""
        try:
            while self.follow_once():
                pass
            self.reaching.succeeded()
        except ConcurrencyError:
            # Another replica noted the same withdrawal on the plan first: the normal race
            # of two replicas, not a failure; the page read again finds it noted.
            log.debug("consent feed: another replica wrote first; reading the page again")
            return False
        except Exception as error:  # keep following; the cache goes stale meanwhile
            self.reaching.failed(error)
        return True

    def follow_once(self, page: int = 500) -> int:
        """Handles the next page of consent events; returns how many.

        Two cursors: this process's own, in memory, for its permit cache (every replica must
        see every event for its own cache), and the shared tracked position, for the notes on
        plans (written once, whichever replica gets there first). One page read from the
        lower of the two serves both. Handling is idempotent (a plan notes a withdrawal once),
        so replicas that happen to handle the same page do no harm; the tracked position only
        ever moves forward."""
        shared, cached_to = self._position(), self._cache_cursor
        after = shared if cached_to is None else min(shared, cached_to)
        body = self._page(after, page)
        events = body["events"]
        for item in events:
            position = int(item["position"])
            if cached_to is not None and position > cached_to:
                self._forget_cached(item)
            if position > shared:
                self._handle_or_record(item)
        if body["next"] > shared:
            with self._engine.begin() as connection:
                connection.execute(
                    projection_tracking.update()
                    .where(
                        projection_tracking.c.name == FEED,
                        projection_tracking.c.position < body["next"],
                    )
                    .values(position=body["next"])
                )
        if cached_to is None:
            # This process's first reach of the consent service: it starts at the head, and
            # trusts nothing it cached before (none of it was checked against the feed).
            self._cache.forget_everything()
            self._cache_cursor = int(body.get("head", body["next"]))
        else:
            self._cache_cursor = max(cached_to, int(body["next"]))
        self._cache.feed_reached()
        return len(events)

    def _page(self, after: int, page: int) -> dict[str, Any]:
        response = self._client.get(
            "/events",
            # Only consents' events: the consent service's access records are not ours to
            # read, and reading them would log more of them.
            params={"after": after, "limit": page, "type": CONSENT_AGGREGATE},
            headers={"Authorization": f"Bearer {self._token_source()}"},
        )
        response.raise_for_status()
        return response.json()

    def _forget_cached(self, item: dict[str, Any]) -> None:
        """This process's permits that the event may have ended."""
        event_name = consent_event_name(item["type"])
        if event_name in CONSENT_ENDING_EVENTS:
            self._cache.forget_consent(item["aggregate_id"])
        elif event_name == CONSENT_GIVEN:
            patient = item["payload"].get(GIVEN_PATIENT) or {}
            self._cache.forget_person(patient.get("value", ""))

    def _handle_or_record(self, item: dict[str, Any]) -> None:
        """Handles one consent event; one that cannot be handled is recorded and passed over,
        so it never stops the feed for the events after it."""
        try:
            self._handle(item)
        except _RETRIED_LATER:
            raise
        except Exception as error:
            with self._engine.begin() as connection:
                record_failure(
                    connection,
                    FEED,
                    position=int(item["position"]),
                    originator_id=str(item["aggregate_id"]),
                    originator_version=int(item["version"]),
                    topic=str(item["type"]),
                    error=error,
                )

    def _handle(self, item: dict[str, Any]) -> None:
        """The plans that relied on a consent that ended note so."""
        consent_id = item["aggregate_id"]
        if consent_event_name(item["type"]) in CONSENT_ENDING_EVENTS:
            for plan_id in self._index.relying_on(consent_id):
                self._note_withdrawn(plan_id, consent_id)

    def _note_withdrawn(self, plan_id: Any, consent_id: str) -> None:
        at = now()
        with writing(
            WriteContext(
                SERVICE_ACTOR, "operation", "CarePlan", at, detail=f"consent {consent_id} withdrawn"
            )
        ):
            self._plans.change(
                plan_id,
                lambda plan: plan.note_consent_withdrawn(
                    consent_id=consent_id, at=at, by=SERVICE_ACTOR
                ),
            )

    def position(self) -> int:
        """How far into the consent service's log this service has acted on."""
        return self._tracked() or 0

    def _tracked(self) -> int | None:
        with self._reader.connect() as connection:
            return tracked_position(connection, FEED)

    def _position(self) -> int:
        """The tracked position; the row is created (a write) only the first time."""
        if (tracked := self._tracked()) is not None:
            return tracked
        with self._engine.begin() as connection:
            create_tracking_row(connection, FEED)
            return tracked_position(connection, FEED) or 0
