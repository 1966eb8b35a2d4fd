import pytest

from contracts.identifiers import (
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidIdentifier,
    mask_person_id,
    parse_hsa_id,
    parse_person_identifier,
    with_check_digit,
)


def test_a_valid_personnummer_is_returned_in_twelve_digits():
    assert parse_person_identifier(PERSONNUMMER_SYSTEM, "19121212-1212").value == "191212121212"
    assert parse_person_identifier(PERSONNUMMER_SYSTEM, "191212121212").value == "191212121212"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("191212121213", "check digit"),
        ("1912121212", "12 digits"),
        ("19121312121X", "12 digits"),
        ("191302301212", "date"),
        (None, "missing"),
    ],
)
def test_an_invalid_personnummer_is_refused_with_the_reason(value, problem):
    with pytest.raises(InvalidIdentifier, match=problem):
        parse_person_identifier(PERSONNUMMER_SYSTEM, value)


def test_a_samordningsnummer_has_its_day_plus_sixty():
    number = with_check_digit("19121272121")
    assert parse_person_identifier(SAMORDNINGSNUMMER_SYSTEM, number).value == number
    with pytest.raises(InvalidIdentifier, match="plus 60"):
        parse_person_identifier(SAMORDNINGSNUMMER_SYSTEM, "191212121212")


def test_an_unknown_identifier_system_is_refused():
    with pytest.raises(InvalidIdentifier, match="system"):
        parse_person_identifier("urn:oid:1.2.3", "191212121212")


def test_hsa_ids_and_masking():
    assert parse_hsa_id("SE2321000016-7P31") == "SE2321000016-7P31"
    with pytest.raises(InvalidIdentifier):
        parse_hsa_id("2321000016")
    assert mask_person_id("191212121212") == "1912********"
