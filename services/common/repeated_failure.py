"""A failure that repeats every poll is logged once when it starts, then at most once per
interval with how often it happened meanwhile, and once when it ends; the last success is
kept for readiness (`/readyz`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx


def describe(error: BaseException) -> str:
    """The kind of failure, never its message (which may quote request data)."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"{type(error).__name__} {error.response.status_code}"
    return type(error).__name__


class RepeatedFailure:
    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        interval_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log, self._what, self._interval, self._clock = log, what, interval_seconds, clock
        self._lock = threading.Lock()
        self.started = clock()
        self.last_success: float | None = None
        self.last_error: str | None = None
        self._failing_since: float | None = None
        self._logged_at = 0.0
        self._unlogged = 0

    def failed(self, error: BaseException) -> None:
        now, kind = self._clock(), describe(error)
        with self._lock:
            self.last_error = kind
            if self._failing_since is None:
                self._failing_since, self._logged_at, self._unlogged = now, now, 0
                self._log.warning("%s: %s", self._what, kind)
                return
            self._unlogged += 1
            if now - self._logged_at >= self._interval:
                self._log.warning(
                    "%s: %s (failing for %.0f s, %d more failures since the last warning)",
                    self._what, kind, now - self._failing_since, self._unlogged,
                )  # fmt: skip
                self._logged_at, self._unlogged = now, 0

    def succeeded(self) -> None:
        now = self._clock()
        with self._lock:
            self.last_success = now
            if self._failing_since is not None:
                self._log.warning(
                    "%s: recovered after %.0f s", self._what, now - self._failing_since
                )
                self._failing_since, self.last_error = None, None

    def seconds_since_success(self) -> float:
        """Since the last success, or since the start when there was none."""
        return self._clock() - (self.last_success or self.started)
