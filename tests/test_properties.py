"""Properties of what the boundary parses, over generated input (hypothesis): identifiers,
FHIR dates and operation Parameters either parse to a canonical value or are refused with the
module's own error, never another exception. Deterministic (derandomised, no example
database) and bounded, so the suite stays fast and repeatable.

Several properties are issue 11's findings (Unicode digits, a trailing newline, the ends of the
calendar) written as laws, so they stay fixed."""

from __future__ import annotations

import re
import string
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from contracts.identifiers import (
    PERSON_ID_SYSTEMS,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidIdentifier,
    parse_hsa_id,
    parse_person_identifier,
    with_check_digit,
)
from services.common.fhir_api import FhirError
from services.common.fhir_time import (
    SUPPORTED_YEARS,
    InvalidDateTime,
    fhir_instant,
    parse_fhir_datetime,
    published,
)
from services.common.parameters import OperationParameters, parameter_specs, parse_parameters
from services.consent.operations import CONSENT_OPERATIONS
from services.sip.consent_operations import ACTIVATE, AS_OF
from services.sip.operations import OPERATIONS

deterministic = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)

CANONICAL_PERSON_ID = re.compile(r"[0-9]{12}", re.ASCII)
CANONICAL_HSA_ID = re.compile(r"SE[0-9]{10,12}(-[A-Za-z0-9]{1,20})?", re.ASCII)
ASCII_WITHOUT_NEWLINE = string.printable.replace("\n", "").replace("\r", "")
UNICODE_DIGITS = st.characters(categories=["Nd"])
# A valid personnummer, and the same written in Arabic-Indic digits (issue 11 finding 6).
VALID_PERSONNUMMER = with_check_digit("19700707707")
ARABIC_INDIC = VALID_PERSONNUMMER.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))


def person_id_parses_canonically_or_is_refused(system: str, value: str) -> None:
    try:
        parsed = parse_person_identifier(system, value)
    except InvalidIdentifier:
        return
    assert CANONICAL_PERSON_ID.fullmatch(parsed.value), repr(parsed.value)
    assert parsed.system == system


def hsa_id_parses_canonically_or_is_refused(value: str) -> None:
    try:
        parsed = parse_hsa_id(value)
    except InvalidIdentifier:
        return
    assert CANONICAL_HSA_ID.fullmatch(parsed), repr(parsed)


# ---- personnummer and samordningsnummer ------------------------------------------------------

ascii_person_ids = st.one_of(
    st.text(alphabet=ASCII_WITHOUT_NEWLINE, max_size=14),
    st.text(alphabet="0123456789-", min_size=11, max_size=14),
)


@deterministic
@given(system=st.sampled_from(PERSON_ID_SYSTEMS), value=ascii_person_ids)
def test_ascii_person_id_parses_canonically_or_is_refused(system, value):
    person_id_parses_canonically_or_is_refused(system, value)


@deterministic
@given(system=st.one_of(st.text(max_size=30), st.none()), value=st.text(max_size=14))
def test_a_person_id_of_an_unknown_system_is_refused(system, value):
    with pytest.raises(InvalidIdentifier):
        parse_person_identifier(system, value)


@deterministic
@given(
    system=st.sampled_from(PERSON_ID_SYSTEMS),
    value=st.one_of(
        st.text(max_size=14), st.text(alphabet=UNICODE_DIGITS, min_size=12, max_size=12)
    ),
)
@example(system=PERSONNUMMER_SYSTEM, value=ARABIC_INDIC)
def test_any_text_as_person_id_parses_to_ascii_or_is_refused(system, value):
    person_id_parses_canonically_or_is_refused(system, value)


@deterministic
@given(
    system=st.sampled_from(PERSON_ID_SYSTEMS),
    value=st.text(alphabet="0123456789\n", min_size=13, max_size=13),
)
@example(system=PERSONNUMMER_SYSTEM, value=VALID_PERSONNUMMER + "\n")
def test_a_person_id_with_a_trailing_newline_is_canonical_or_refused(system, value):
    person_id_parses_canonically_or_is_refused(system, value)


births = st.dates(min_value=date(1890, 1, 1), max_value=date(2099, 12, 31))


@deterministic
@given(born=births, serial=st.integers(0, 999), samordning=st.booleans(), dashed=st.booleans())
def test_a_valid_number_with_its_check_digit_round_trips(born, serial, samordning, dashed):
    day = born.day + (60 if samordning else 0)
    number = with_check_digit(f"{born:%Y%m}{day:02d}{serial:03d}")
    system = SAMORDNINGSNUMMER_SYSTEM if samordning else PERSONNUMMER_SYSTEM
    written = f"{number[:8]}-{number[8:]}" if dashed else number
    parsed = parse_person_identifier(system, written)
    assert (parsed.system, parsed.value) == (system, number)
    assert parse_person_identifier(system, parsed.value) == parsed


@deterministic
@given(born=births, serial=st.integers(0, 999), wrong=st.integers(1, 9))
def test_a_wrong_check_digit_is_refused(born, serial, wrong):
    number = with_check_digit(f"{born:%Y%m%d}{serial:03d}")
    miswritten = number[:11] + str((int(number[11]) + wrong) % 10)
    with pytest.raises(InvalidIdentifier):
        parse_person_identifier(PERSONNUMMER_SYSTEM, miswritten)


# ---- HSA-id ----------------------------------------------------------------------------------


@deterministic
@given(
    value=st.one_of(
        st.text(alphabet=ASCII_WITHOUT_NEWLINE, max_size=40),
        st.from_regex(r"SE[0-9]{8,14}(-[A-Za-z0-9 ]{0,22})?", fullmatch=True),
    )
)
def test_ascii_hsa_id_parses_canonically_or_is_refused(value):
    hsa_id_parses_canonically_or_is_refused(value)


@deterministic
@given(value=st.one_of(st.none(), st.integers(), st.lists(st.text(), max_size=2)))
def test_an_hsa_id_that_is_not_text_is_refused(value):
    with pytest.raises(InvalidIdentifier):
        parse_hsa_id(value)


@deterministic
@given(value=st.from_regex(r"SE[0-9]{10,12}(-[A-Za-z0-9]{1,20})?", fullmatch=True))
def test_a_well_formed_hsa_id_round_trips(value):
    assert parse_hsa_id(value) == value


@deterministic
@given(
    value=st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda digits: f"SE{digits}", st.text(alphabet=UNICODE_DIGITS, min_size=10, max_size=12)
        ),
        st.builds(
            lambda digits: f"SE{digits}\n", st.text(alphabet="0123456789", min_size=10, max_size=12)
        ),
    )
)
@example(value="SE٢٣٢١٠٠٠٠٣٢")
@example(value="SE2321000032\n")
def test_any_text_as_hsa_id_parses_to_ascii_or_is_refused(value):
    hsa_id_parses_canonically_or_is_refused(value)


# ---- FHIR dates and dateTimes ----------------------------------------------------------------


def parses_or_is_refused(value: str, end_of_period: bool) -> None:
    try:
        parsed = parse_fhir_datetime(value, end_of_period=end_of_period)
    except InvalidDateTime:
        return
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
    assert parse_fhir_datetime(fhir_instant(parsed)) == published(parsed)


def fhir_texts(dates: st.SearchStrategy[date]) -> st.SearchStrategy[str]:
    """FHIR date and dateTime spellings: YYYY, YYYY-MM, YYYY-MM-DD, with a time and zone."""
    zones = st.sampled_from(["Z", "+00:00", "+01:00", "-05:00", "+14:00", ""])
    return st.one_of(
        dates.map(lambda d: f"{d:%Y}"),
        dates.map(lambda d: f"{d:%Y-%m}"),
        dates.map(lambda d: d.isoformat()),
        st.builds(lambda d, zone: f"{d.isoformat()}T12:30:00{zone}", dates, zones),
    )


supported_dates = st.dates(min_value=date(1800, 1, 1), max_value=date(9000, 12, 31))


@deterministic
@given(value=st.one_of(st.text(max_size=40), fhir_texts(supported_dates)), end=st.booleans())
def test_any_text_as_date_parses_or_is_refused(value, end):
    parses_or_is_refused(value, end)


@deterministic
@given(value=fhir_texts(st.dates()), end=st.booleans())
@example(value="0001-01-01", end=False)
@example(value="9999-12-31", end=True)
@example(value="0001-01-01T00:00:00+01:00", end=False)
def test_dates_at_the_ends_of_the_calendar_parse_or_are_refused(value, end):
    parses_or_is_refused(value, end)


@deterministic
@given(
    moment=st.datetimes(
        min_value=datetime(1800, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
    )
)
def test_an_instant_renders_and_parses_back_within_the_supported_years(moment):
    if moment.year in SUPPORTED_YEARS:
        assert parse_fhir_datetime(fhir_instant(moment)) == published(moment)
    else:
        with pytest.raises(InvalidDateTime):
            parse_fhir_datetime(fhir_instant(moment))


# ---- operation Parameters --------------------------------------------------------------------


DECLARED = sorted(
    {
        (operation.id, operation.parameters)
        for operation in [*OPERATIONS, *CONSENT_OPERATIONS, ACTIVATE, AS_OF]
    },
    key=lambda declared: declared[0],
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
VALUE_KEYS = [
    "valueString",
    "valueCode",
    "valueDate",
    "valueDateTime",
    "valueInstant",
    "valueBoolean",
    "valueInteger",
    "valueDecimal",
    "valueIdentifier",
    "valueReference",
    "valueMarkdown",
]


def parameters_of(
    model: type[OperationParameters], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """Lists of parameters named as the model declares them (or not), each with a value[x]
    or parts of any JSON."""
    names = [spec.name for spec in parameter_specs(model)] or ["none"]
    parameter = st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(names), json_values)},
        optional={key: values for key in VALUE_KEYS}
        | {
            "part": st.one_of(
                json_values,
                st.lists(
                    st.fixed_dictionaries(
                        {"name": st.text(max_size=12)}, optional={"valueString": values}
                    ),
                    max_size=2,
                ),
            )
        },
    )
    return st.one_of(json_values, st.lists(parameter, max_size=4))


def bodies(
    model: type[OperationParameters], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(st.text(max_size=12), json_values, max_size=3),
        st.fixed_dictionaries(
            {"resourceType": st.just("Parameters"), "parameter": parameters_of(model, values)}
        ),
    )


def parsed_or_refused(model: type[OperationParameters], body: Any, operation: str) -> None:
    try:
        parsed = parse_parameters(model, body, operation)
    except FhirError as refusal:
        assert refusal.status in (400, 422), refusal.status
        return
    assert isinstance(parsed, model)


@pytest.mark.parametrize(("operation", "model"), DECLARED, ids=[d[0] for d in DECLARED])
@settings(deterministic, max_examples=40)
@given(data=st.data())
def test_any_json_as_parameters_is_parsed_or_refused(operation, model, data):
    parsed_or_refused(model, data.draw(bodies(model, json_values)), operation)


# Each overflows today in the UTC conversion (9999-12-31 alone still fits).
CALENDAR_ENDS = ["0001-01-01", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"]
DATE_PARAMETERS = [
    (operation, spec.name, kind, value)
    for operation, model in DECLARED
    for spec in parameter_specs(model)
    if spec.fhir_type and spec.fhir_type.name in ("dateTime", "instant")
    for kind in spec.fhir_type.accepts
    for value in CALENDAR_ENDS
]


@pytest.mark.parametrize(("operation", "name", "kind", "value"), DATE_PARAMETERS)
def test_a_date_time_parameter_at_the_ends_of_the_calendar_is_parsed_or_refused(
    operation, name, kind, value
):
    model = dict(DECLARED)[operation]
    body = {"resourceType": "Parameters", "parameter": [{"name": name, kind: value}]}
    parsed_or_refused(model, body, operation)
