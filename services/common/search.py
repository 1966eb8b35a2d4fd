"""FHIR search parameters both services read the same way."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from contracts.identifiers import (
    HSA_ID_SYSTEM,
    PERSON_ID_SYSTEMS,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidIdentifier,
    parse_hsa_id,
    parse_person_identifier,
)
from services.common.fhir_api import FhirError
from services.common.fhir_time import InvalidDateTime, parse_fhir_date, parse_fhir_datetime
from services.common.result_parameters import RESULT_PARAMETERS

AND = "&"  # how a query's repeated values are joined in one value (what `&` would split)


def query_of(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A search's parameters, a repeated one kept as its values joined by AND (R4: each
    repetition is one more condition); a result parameter given twice is a 400 naming it,
    not last-one-wins."""
    query: dict[str, str] = {}
    for name, value in items:
        if name in query and name in RESULT_PARAMETERS:
            raise FhirError(
                400,
                "invalid",
                f"{name} is given more than once; a result parameter is given once",
                expression=name,
            )
        query[name] = f"{query[name]}{AND}{value}" if name in query else value
    return query


def all_of(query: Mapping[str, str], name: str) -> list[str]:
    """Each value a repeated parameter was given (its conditions, all to hold)."""
    value = query.get(name)
    return [] if value is None else value.split(AND)


def token_code(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """One code of a token parameter (with or without its system), of `allowed`."""
    code = value.rpartition("|")[2]
    if code not in allowed:
        raise FhirError(400, "invalid", f"{name} is one of {', '.join(allowed)}", expression=name)
    return code


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


def date_bounds(name: str, value: str) -> tuple[datetime | None, datetime | None]:
    """One FHIR date search value (`ge2026-01-01`, `2026-03`, ...) as (from, to) instants."""
    prefix, moment = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    if prefix not in ("ge", "gt", "le", "lt", "eq"):
        raise FhirError(
            400, "invalid", f"{name} takes the prefixes ge, gt, le, lt, eq", expression=name
        )
    try:
        # A date stands for its whole period: gt is after its end, lt before its start.
        if prefix == "eq":
            return (
                parse_fhir_datetime(moment),
                parse_fhir_datetime(moment, end_of_period=True),
            )
        if prefix == "ge":
            return parse_fhir_datetime(moment), None
        if prefix == "gt":
            return parse_fhir_datetime(moment, end_of_period=True) + _INSTANT, None
        if prefix == "le":
            return None, parse_fhir_datetime(moment, end_of_period=True)
        return None, parse_fhir_datetime(moment) - _INSTANT
    except (InvalidDateTime, OverflowError) as error:
        raise FhirError(400, "invalid", f"{name}: {error}", expression=name) from None


def date_range(values: list[str], name: str = "date") -> tuple[datetime | None, datetime | None]:
    """FHIR date search values, all to hold, as (from, to) instants."""
    since = until = None
    for value in values:
        low, high = date_bounds(name, value)
        since = low if low is not None and (since is None or low > since) else since
        until = high if high is not None and (until is None or high < until) else until
    return since, until


def person_reference(name: str, value: str) -> tuple[str, str]:
    """`Patient/<personnummer>` (or the bare number, or an absolute URL ending so): the
    person's identifier system and number; a samordningsnummer is told by its day (+60)."""
    number = value.rpartition("Patient/")[2] if "Patient/" in value else value
    if "/" in number:
        raise FhirError(400, "invalid", f"{name} refers to a Patient", expression=name)
    system = (
        SAMORDNINGSNUMMER_SYSTEM
        if len(number) == 12 and number[6:8].isdigit() and number[6:8] > "60"
        else PERSONNUMMER_SYSTEM
    )
    try:
        return system, parse_person_identifier(system, number).value
    except InvalidIdentifier as error:
        # Never echo the value: it may be a personnummer with a typo.
        raise FhirError(400, "invalid", f"{name}: {error}", expression=name) from None


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
