"""FHIR dateTime values in and out. Partial dates are read in Swedish local time: a consent
"to 2026-12-31" lasts until that day ends in Sweden.

The services support the years 1900 to 2199 (SUPPORTED_YEARS) in every date and instant they
read, from a search parameter or a resource: a plan, a meeting or a consent outside them is a
typing error, and staying well inside Python's years 1..9999 means that a day or a microsecond
added at either edge (end of a period, `gt`, `lt`) can never overflow."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SWEDEN = ZoneInfo("Europe/Stockholm")


def swedish_today() -> date:
    """Today's date in Sweden, the calendar a plan's dates (a follow-up, a consent's period)
    are on: the machine's own date (UTC in production) is still yesterday's for an hour or
    two after midnight there."""
    return datetime.now(SWEDEN).date()


_PARTIAL = re.compile(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?$")
# ASCII digits only: fromisoformat would read other Unicode digits as well.
_DATE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.+\-Z]+$")
SUPPORTED_YEARS = range(1900, 2200)


class InvalidDateTime(ValueError):
    pass


def parse_fhir_datetime(value: str, *, end_of_period: bool = False) -> datetime:
    """A FHIR date or dateTime as an aware UTC datetime; a partial date stands for its first
    instant, or with `end_of_period` its last."""
    if not isinstance(value, str):
        raise InvalidDateTime("a date or dateTime is text")
    match = _PARTIAL.match(value)
    if match:
        year = _supported_year(int(match[1]), value)
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
        if not _DATE_TIME.match(value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidDateTime(f"'{value}' is not a FHIR dateTime") from None
    _supported_year(parsed.year, value)
    if parsed.tzinfo is None:
        raise InvalidDateTime(f"'{value}' has a time but no time zone")
    return parsed.astimezone(UTC)


def parse_fhir_date(value: str) -> date:
    """A FHIR date (YYYY-MM-DD) within the supported years."""
    if not isinstance(value, str) or not _FULL_DATE.match(value):
        raise InvalidDateTime(f"'{value}' is not a date like 2026-12-01")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidDateTime(f"'{value}' is not a date") from None
    _supported_year(day.year, value)
    return day


_FULL_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _supported_year(year: int, value: str) -> int:
    if year not in SUPPORTED_YEARS:
        raise InvalidDateTime(
            f"'{value}' is outside the supported years "
            f"{SUPPORTED_YEARS.start}-{SUPPORTED_YEARS.stop - 1}"
        )
    return year


def fhir_instant(moment: datetime) -> str:
    return published(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def published(moment: datetime) -> datetime:
    """An instant as the API shows it (to the millisecond, rounded down). Time travel and
    history compare these, so `_at` a version's own `lastUpdated` finds that version."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def now() -> datetime:
    return datetime.now(UTC)
