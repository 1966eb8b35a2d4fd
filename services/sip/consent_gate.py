"""The SIP service asks the consent service before it relies on a consent.

Fail closed: anything but a well-formed decision from the consent service counts as
"unreachable", and the caller refuses to proceed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import httpx

from contracts.consent_decision import (
    CHECK_PATH,
    ConsentCheckRequest,
    ConsentDecision,
    MalformedParameters,
)


class ConsentServiceUnavailable(Exception):
    pass


class ConsentGate(Protocol):
    def check(self, request: ConsentCheckRequest) -> ConsentDecision: ...


class HttpConsentGate:
    def __init__(
        self, base_url: str, timeout_seconds: float, token_source: Callable[[], str]
    ) -> None:
        self._token_source = token_source
        self._client = httpx.Client(
            base_url=base_url,
            timeout=timeout_seconds,
            headers={"Accept": "application/fhir+json"},
        )

    def check(self, request: ConsentCheckRequest) -> ConsentDecision:
        try:
            response = self._client.post(
                CHECK_PATH,
                json=request.to_parameters(),
                headers={
                    "Content-Type": "application/fhir+json",
                    "Authorization": f"Bearer {self._token_source()}",
                },
            )
        except httpx.HTTPError as error:
            raise ConsentServiceUnavailable(type(error).__name__) from None
        if response.status_code != 200:
            raise ConsentServiceUnavailable(f"HTTP {response.status_code}")
        try:
            return ConsentDecision.from_parameters(response.json())
        except (ValueError, MalformedParameters):
            raise ConsentServiceUnavailable("malformed decision") from None

    def close(self) -> None:
        self._client.close()


class CachingConsentGate:
    """Remembers permits for a while, but only while the consent feed is being followed, and
    never past the moment the permit itself says it ends.

    A permit is reused only if the feed follower has reached the consent service within the
    last second, and the follower drops every permit that relied on a consent the moment it
    sees that consent withdrawn (or a new consent or block for the person): so a withdrawal
    stops disclosure within about a second even with the cache. A permit's `valid_until` (a
    consent's period end, an override's end, a block's start) is compared with the wall clock,
    as the consent service's periods are: at that moment the permit is dropped and the consent
    service asked again. Denials are never cached.
    """

    def __init__(
        self,
        gate: ConsentGate,
        ttl_seconds: float = 30.0,
        stale_after: float = 1.0,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._gate = gate
        self._ttl = ttl_seconds
        self._stale_after = stale_after
        self._wall_clock = wall_clock
        self._permits: dict[ConsentCheckRequest, tuple[float, ConsentDecision]] = {}
        self._lock = threading.Lock()
        self._feed_seen_at = float("-inf")
        # Counts what the feed made the cache forget: a permit asked for before a forgetting
        # and answered after it may predate the event, so it is not remembered.
        self._forgettings = 0

    def check(self, request: ConsentCheckRequest) -> ConsentDecision:
        now = time.monotonic()
        with self._lock:
            cached = self._permits.get(request)
            feed_fresh = now - self._feed_seen_at <= self._stale_after
            if cached and feed_fresh and now - cached[0] <= self._ttl:
                if not self._ended(cached[1]):
                    return cached[1]
                del self._permits[request]
            forgettings = self._forgettings
        decision = self._gate.check(request)
        if decision.permitted and not self._ended(decision):
            with self._lock:
                if self._forgettings == forgettings:
                    self._permits[request] = (now, decision)
        return decision

    def _ended(self, decision: ConsentDecision) -> bool:
        return decision.valid_until is not None and self._wall_clock() >= decision.valid_until

    def feed_reached(self) -> None:
        with self._lock:
            self._feed_seen_at = time.monotonic()

    def forget_consent(self, consent_id: str) -> None:
        with self._lock:
            self._forgettings += 1
            for request, (_, decision) in list(self._permits.items()):
                if consent_id in decision.consents:
                    del self._permits[request]

    def forget_everything(self) -> None:
        with self._lock:
            self._forgettings += 1
            self._permits.clear()

    def forget_person(self, person_value: str) -> None:
        with self._lock:
            self._forgettings += 1
            for request in [r for r in self._permits if r.patient_value == person_value]:
                del self._permits[request]

    def close(self) -> None:
        close = getattr(self._gate, "close", None)
        if close:
            close()
