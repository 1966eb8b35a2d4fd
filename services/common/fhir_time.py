"""FHIR dateTime values in and out. Partial dates are read in Swedish local time: a consent
"to 2026-12-31" lasts until that day ends in Sweden."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

SWEDEN = ZoneInfo("Europe/Stockholm")

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


class InvalidDateTime(ValueError):
    pass


def parse_fhir_datetime(value: str, *, end_of_period: bool = False) -> datetime:
    """A FHIR date or dateTime as an aware UTC datetime; a partial date stands for its first
    instant, or with `end_of_period` its last."""
    match = _PARTIAL.match(value)
    if match:
        year = int(match[1])
        month = int(match[2] or 1)
        day = int(match[3] or 1)
        try:
            start = datetime(year, month, day, tzinfo=SWEDEN)
        except ValueError:
            raise InvalidDateTime(f"'{value}' is not a date") from None
        if not end_of_period:
            return start.astimezone(UTC)
        if match[3]:
            following = start + timedelta(days=1)
        elif match[2]:
            following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=SWEDEN)
        else:
            following = datetime(year + 1, 1, 1, tzinfo=SWEDEN)
        following = datetime.combine(following.date(), time(), tzinfo=SWEDEN)
        return (following - timedelta(microseconds=1)).astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidDateTime(f"'{value}' is not a FHIR dateTime") from None
    if parsed.tzinfo is None:
        raise InvalidDateTime(f"'{value}' has a time but no time zone")
    return parsed.astimezone(UTC)


def fhir_instant(moment: datetime) -> str:
    return published(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def published(moment: datetime) -> datetime:
    """An instant as the API shows it (to the millisecond, rounded down). Time travel and
    history compare these, so `_at` a version's own `lastUpdated` finds that version."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def now() -> datetime:
    return datetime.now(UTC)
