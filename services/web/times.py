"""Instants as the services give them (UTC, FHIR `instant`/`dateTime`) and as people in Sweden
read and type them (local time, Europe/Stockholm)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from services.common.fhir_time import SWEDEN


def parse_instant(value: str | None) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (a date: its start, in Sweden)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), SWEDEN)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=SWEDEN)


def local(value: str | None, seconds: bool = False) -> str:
    """`2026-12-02T15:28:46.543Z` → `2026-12-02 16:28` (Swedish time); a date stays a date."""
    if not value:
        return ""
    if len(value) == 10:
        return value
    parsed = parse_instant(value)
    if parsed is None:
        return value
    return parsed.astimezone(SWEDEN).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_date(value: str | None) -> str:
    """The Swedish date of a FHIR date or instant: a consent's period, a target date."""
    return local(value)[:10]


def fhir_instant(moment: datetime) -> str:
    """An aware datetime as a FHIR instant in UTC, to the millisecond."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def typed_instant(value: str | None) -> datetime | None:
    """What a user typed or a link carried as a moment: a date (its end, 23:59:59.999 in
    Sweden: "the plan as it stood on that day"), a local date and time (`datetime-local`,
    with or without seconds and milliseconds), or an instant with its offset."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(23, 59, 59, 999000), SWEDEN)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    if not 1900 <= parsed.year <= 2199:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=SWEDEN)


def local_input(moment: datetime) -> str:
    """A moment as a `datetime-local` input's value, to the millisecond when it has them."""
    there = moment.astimezone(SWEDEN)
    text = there.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{there.microsecond // 1000:03d}" if there.microsecond >= 1000 else "")
