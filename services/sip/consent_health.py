"""Whether the SIP service can reach its consent service, for `/readyz`: without it every
disclosure to another organisation is denied and withdrawals go unnoticed.

Two signs: the consent service's own `/readyz` (reachable and ready; asked at most once a
second, whatever the probe rate), and the consent feed follower, whose authenticated poll
runs five times a second: no page for `STALL_SECONDS` means the follower is stalled (the
consent service down, or the SIP service's credentials or grant refused: the reason is the
last error, e.g. `HTTPStatusError 403`)."""

from __future__ import annotations

import threading
import time

import httpx

from services.common.repeated_failure import RepeatedFailure, describe

STALL_SECONDS = 5.0


class ConsentReachability:
    def __init__(
        self, consent_url: str, feed: RepeatedFailure, *, cache_seconds: float = 1.0
    ) -> None:
        self._url, self._feed, self._cache_seconds = consent_url.rstrip("/"), feed, cache_seconds
        self._lock = threading.Lock()
        self._asked_at = -float("inf")
        self._answer: str | None = None

    def problem(self) -> str | None:
        problems = [problem for problem in (self._probe(), self._stalled()) if problem]
        return "; ".join(problems) or None

    def _probe(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._asked_at >= self._cache_seconds:
                self._answer = self._ask()
                self._asked_at = time.monotonic()
            return self._answer

    def _ask(self) -> str | None:
        try:
            answer = httpx.get(f"{self._url}/readyz", timeout=1.0)
        except httpx.HTTPError as error:
            return f"consent service unreachable at {self._url}: {describe(error)}"
        if answer.status_code != 200:
            return f"consent service at {self._url} is not ready ({answer.status_code})"
        return None

    def _stalled(self) -> str | None:
        quiet = self._feed.seconds_since_success()
        if quiet <= STALL_SECONDS:
            return None
        cause = f": {self._feed.last_error}" if self._feed.last_error else ""
        return f"consent feed stalled: no page from the consent service for {quiet:.0f} s{cause}"
