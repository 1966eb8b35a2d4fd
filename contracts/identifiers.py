"""Swedish identifiers: personnummer, samordningsnummer and HSA-id.

Identifier systems follow HL7 Sweden's R4 base profiles (basprofiler-r4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

PERSONNUMMER_SYSTEM = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER_SYSTEM = "http://electronichealth.se/identifier/samordningsnummer"
HSA_ID_SYSTEM = "urn:oid:1.2.752.29.4.19"
# The organisation the SIP service's own development tokens name: in access records it is the
# service itself (noting a withdrawal, following the consent log), which clients show as such.
SERVICE_HSA_ID = "SE0000000000-SIPSERVICE"

PERSON_ID_SYSTEMS = (PERSONNUMMER_SYSTEM, SAMORDNINGSNUMMER_SYSTEM)

# An HSA-id is a country code, the issuing organisation's number, and an optional suffix,
# e.g. SE2321000016-7P31 or SE162321000255-O11111.
# [0-9] and re.ASCII, not \d: Unicode digits (Arabic-Indic, fullwidth, ...) are refused, so
# that one person cannot be stored under two spellings of the same number.
_HSA_ID = re.compile(r"^SE[0-9]{10,12}(-[A-Za-z0-9]{1,20})?$", re.ASCII)
_TWELVE_DIGITS = re.compile(r"^[0-9]{12}$", re.ASCII)


class InvalidIdentifier(ValueError):
    """An identifier that is not well formed for its system."""


def luhn_check_digit(nine_digits: str) -> int:
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


@dataclass(frozen=True)
class PersonIdentifier:
    system: str
    value: str

    def as_fhir(self) -> dict[str, str]:
        return {"system": self.system, "value": self.value}


def parse_person_identifier(system: str | None, value: str | None) -> PersonIdentifier:
    """Validates a personnummer or samordningsnummer and returns it in its 12-digit form.

    Accepts `YYYYMMDDNNNC` and `YYYYMMDD-NNNC`; the date must exist (the day plus 60 for a
    samordningsnummer) and the last digit must be the Luhn check digit of the ten before it.
    """
    if system not in PERSON_ID_SYSTEMS:
        raise InvalidIdentifier(f"identifier system must be one of {', '.join(PERSON_ID_SYSTEMS)}")
    if not isinstance(value, str):
        raise InvalidIdentifier("identifier value is missing")
    digits = value.replace("-", "", 1) if len(value) == 13 and value[8] == "-" else value
    if not _TWELVE_DIGITS.fullmatch(digits):
        raise InvalidIdentifier("a national person identifier has 12 digits: YYYYMMDDNNNC")
    year, month, day = int(digits[0:4]), int(digits[4:6]), int(digits[6:8])
    if system == SAMORDNINGSNUMMER_SYSTEM:
        if day <= 60:
            raise InvalidIdentifier("a samordningsnummer has its day of birth plus 60")
        day -= 60
    try:
        date(year, month, day)
    except ValueError:
        raise InvalidIdentifier("the identifier's date of birth does not exist") from None
    if luhn_check_digit(digits[2:11]) != int(digits[11]):
        raise InvalidIdentifier("the identifier's check digit is wrong") from None
    return PersonIdentifier(system=system, value=digits)


def parse_hsa_id(value: str | None) -> str:
    if not isinstance(value, str) or not _HSA_ID.fullmatch(value):
        raise InvalidIdentifier("an HSA-id looks like SE2321000016-7P31")
    return value


def with_check_digit(eleven_digits: str) -> str:
    """Completes a 12-digit personnummer from its first eleven digits (for test data)."""
    return eleven_digits + str(luhn_check_digit(eleven_digits[2:11]))


def mask_person_id(value: str) -> str:
    """What may be printed in an application log: the year of birth only."""
    return value[:4] + "********" if len(value) == 12 else "************"


def birth_date(identifier: PersonIdentifier) -> date:
    """The date of birth a personnummer or samordningsnummer carries."""
    value = identifier.value
    day = int(value[6:8])
    if identifier.system == SAMORDNINGSNUMMER_SYSTEM:
        day -= 60
    return date(int(value[0:4]), int(value[4:6]), day)


def age_on(identifier: PersonIdentifier, on: date) -> int:
    born = birth_date(identifier)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
