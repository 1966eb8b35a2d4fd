"""A personnummer (or samordningsnummer) as a user types it, checked before any service is
asked (contracts/identifiers.py), with what is wrong said in Swedish. The number is only ever
posted in a form body: never in a URL, a page title or a log line."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.identifiers import (
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)

FORMAT = "Skriv personnumret med tolv siffror, ÅÅÅÅMMDD-NNNN (till exempel 19121212-1212)."


@dataclass(frozen=True)
class Checked:
    """A number as typed: the identifier when it is valid, otherwise why not (Swedish)."""

    typed: str
    identifier: PersonIdentifier | None
    problem: str | None

    @property
    def token(self) -> str:
        """`system|value`, as a FHIR search by identifier takes it."""
        assert self.identifier is not None
        return f"{self.identifier.system}|{self.identifier.value}"


def check_person_number(typed: str | None, required: bool = True) -> Checked:
    text = " ".join((typed or "").split())
    if not text:
        return Checked(text, None, "Ange personnumret." if required else None)
    digits = text.replace(" ", "")
    for length, at in ((13, 8), (11, 6)):  # ÅÅÅÅMMDD-NNNN, or ÅÅMMDD-NNNN
        if len(digits) == length and digits[at] in "-+":
            digits = digits[:at] + digits[at + 1 :]
    if not digits.isascii() or not digits.isdigit():
        problem = f"Personnumret får bara innehålla siffror och bindestreck. {FORMAT}"
        return Checked(text, None, problem)
    if len(digits) == 10:
        return Checked(
            text,
            None,
            "Ange hela födelseåret: personnumret har tolv siffror, ÅÅÅÅMMDD-NNNN.",
        )
    if len(digits) != 12:
        return Checked(text, None, FORMAT)
    # The day plus 60 is a samordningsnummer (for people not, or not yet, registered here).
    system = SAMORDNINGSNUMMER_SYSTEM if int(digits[6:8]) > 60 else PERSONNUMMER_SYSTEM
    try:
        return Checked(text, parse_person_identifier(system, digits), None)
    except InvalidIdentifier as error:
        return Checked(text, None, _in_swedish(str(error), system))


def _in_swedish(message: str, system: str) -> str:
    what = "Samordningsnumret" if system == SAMORDNINGSNUMMER_SYSTEM else "Personnumret"
    if "check digit" in message:
        return (
            f"{what} stämmer inte: kontrollsiffran (den sista siffran) är fel. Kontrollera numret."
        )
    if "date of birth" in message:
        return f"{what} stämmer inte: födelsedatumet finns inte. Kontrollera numret."
    return FORMAT


def shown(identifier: PersonIdentifier | None) -> str:
    """The number as people read it: ÅÅÅÅMMDD-NNNN."""
    if identifier is None:
        return ""
    return f"{identifier.value[:8]}-{identifier.value[8:]}"
