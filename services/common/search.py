"""FHIR search parameters both services read the same way."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from contracts.identifiers import (
    HSA_ID_SYSTEM,
    PERSON_ID_SYSTEMS,
    InvalidIdentifier,
    parse_hsa_id,
    parse_person_identifier,
)
from services.common.fhir_api import FhirError, whole_number
from services.common.fhir_time import InvalidDateTime, parse_fhir_date, parse_fhir_datetime
from services.common.http_conventions import ignoring_unknown_parameters
from services.common.paging import TOTAL_HINTS, count_parameter, summary_count, total_hints

# Accepted everywhere and without effect on which resources match.
RESULT_PARAMETERS = {"_format", "_pretty", "_summary", "_count", "_cursor"}
# May be given more than once: each is one more condition (AND), e.g. `date=ge..&date=le..`.
REPEATABLE = {"status", "date", "_lastUpdated", "_include"}
AND = "&"  # how a query's repeated values are joined in one value (what `&` would split)


MAX_COUNT = 1000


def ascii_number(name: str, value: str, low: int, high: int) -> int:
    """A count, version or cursor: ASCII digits within [low, high], or a 400 naming it."""
    number = whole_number(value, max_digits=len(str(high)))
    if number is None or not low <= number <= high:
        raise FhirError(
            400, "invalid", f"{name} is a whole number from {low} to {high}", expression=name
        )
    return number


def query_of(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A search's parameters, a repeated one (of REPEATABLE) kept as its values joined by
    AND; any other given twice is a 400 naming it, not last-one-wins."""
    query: dict[str, str] = {}
    for name, value in items:
        if name in query and name not in REPEATABLE:
            raise FhirError(
                400,
                "not-supported",
                f"{name} is given more than once; repeating it is supported for "
                + ", ".join(sorted(REPEATABLE)),
                expression=name,
            )
        query[name] = f"{query[name]}{AND}{value}" if name in query else value
    return query


def all_of(query: Mapping[str, str], name: str) -> list[str]:
    """Each value a repeated parameter was given (its conditions, all to hold)."""
    value = query.get(name)
    return [] if value is None else value.split(AND)


def token_choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> set[str] | None:
    """A token parameter's codes a match may have: comma is OR, repeating it is AND (so
    `status=draft&status=active` matches nothing); None where it is not asked."""
    conditions = all_of(query, name)
    if not conditions:
        return None
    choice = set(allowed)
    for condition in conditions:
        codes = set(condition.split(","))
        if not codes <= set(allowed):
            raise FhirError(
                400, "invalid", f"{name} is one of {', '.join(allowed)}", expression=name
            )
        choice &= codes
    return choice


def page_size(query: Mapping[str, str], default: int = MAX_COUNT) -> int:
    """`_count`: how many matches a search answers with (1..MAX_COUNT)."""
    value = query.get("_count")
    return default if value is None else ascii_number("_count", value, 1, MAX_COUNT)


def search_parameters(query: Mapping[str, str], supported: set[str]) -> dict[str, str]:
    count_parameter(query.get("_count"), MAX_COUNT)  # refused even where all fit one page
    summary_count(query)
    total_hints(query)
    unknown = sorted(set(query) - supported - RESULT_PARAMETERS - set(TOTAL_HINTS))
    # Prefer: handling=lenient ignores them (the answer names them); strict, the default, refuses.
    if unknown and not ignoring_unknown_parameters(unknown):
        raise FhirError(
            400,
            "not-supported",
            f"unsupported search parameter(s): {', '.join(unknown)}; "
            f"supported: {', '.join(sorted(supported))}",
        )
    return {name: value for name, value in query.items() if name in supported}


def person_token(token: str) -> tuple[str | None, str]:
    """`system|value` (or a bare value) naming a person by national identifier."""
    system, _, value = token.rpartition("|")
    if not value:
        raise FhirError(400, "invalid", "an identifier search looks like system|value")
    if system in PERSON_ID_SYSTEMS:
        try:
            value = parse_person_identifier(system, value).value
        except InvalidIdentifier as error:
            raise FhirError(400, "invalid", f"identifier: {error}") from None
    return (system or None), value


def organization_token(name: str, token: str | None) -> str | None:
    """`urn:oid:1.2.752.29.4.19|<HSA-id>` (or a bare HSA-id) naming an organisation."""
    if token is None:
        return None
    system, _, value = token.rpartition("|")
    try:
        if system not in ("", HSA_ID_SYSTEM):
            raise InvalidIdentifier(f"the identifier system is {HSA_ID_SYSTEM}")
        return parse_hsa_id(value)
    except InvalidIdentifier as error:
        raise FhirError(400, "invalid", f"{name}: {error}") from None


_INSTANT = timedelta(microseconds=1)  # the finest time the services record


def date_range(values: list[str]) -> tuple[datetime | None, datetime | None]:
    """FHIR date search values (`ge2026-01-01`, `le2026-12-31`, ...) as (from, to) instants."""
    since = until = None
    for value in values:
        prefix, moment = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
        if prefix not in ("ge", "gt", "le", "lt", "eq"):
            raise FhirError(400, "invalid", "date takes the prefixes ge, gt, le, lt, eq")
        try:
            # A date stands for its whole period: gt is after its end, lt before its start.
            if prefix in ("ge", "eq"):
                since = parse_fhir_datetime(moment)
            if prefix == "gt":
                since = parse_fhir_datetime(moment, end_of_period=True) + _INSTANT
            if prefix in ("le", "eq"):
                until = parse_fhir_datetime(moment, end_of_period=True)
            if prefix == "lt":
                until = parse_fhir_datetime(moment) - _INSTANT
        except InvalidDateTime as error:
            raise FhirError(400, "invalid", f"date: {error}") from None
    return since, until


def follow_up_bound(value: str) -> date:
    """`le2026-12-01`: follow-ups due on or before that day."""
    prefix, day = value[:2], value[2:]
    if prefix not in ("le", "lt"):
        raise FhirError(400, "invalid", "follow-up-due takes le<date> or lt<date>")
    try:
        bound = parse_fhir_date(day)
    except InvalidDateTime as error:
        raise FhirError(
            400, "invalid", f"follow-up-due takes a date like le2026-12-01: {error}"
        ) from None
    return bound if prefix == "le" else bound - timedelta(days=1)
