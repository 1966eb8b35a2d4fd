"""When a failed delivery is tried again: 5 s, doubling, at most an hour apart, for 48 hours
from the first failure; then the subscription is off, and its owner turns it on again.
Common servers give up after a minute; a record system down for a night's maintenance must
not lose a night's notifications."""

from __future__ import annotations

FIRST_RETRY_SECONDS = 5.0
LONGEST_WAIT_SECONDS = 3600.0
GIVE_UP_AFTER_SECONDS = 48 * 3600.0


def next_attempt(attempts: int, failing_since: float, now: float) -> float | None:
    """When to try again after `attempts` failures in a row; None when it is time to give up."""
    if now - failing_since >= GIVE_UP_AFTER_SECONDS:
        return None
    wait = min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), LONGEST_WAIT_SECONDS)
    return now + wait
