"""What every aggregate shares: refusals that name the rule, and the actor on each event."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime


class RuleViolation(Exception):
    """A command the aggregate refuses; `rule` names the rule for the OperationOutcome."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class NotFound(Exception):
    """No aggregate with that id (or not one the caller may know of)."""


class VersionMismatch(RuleViolation):
    """The client's If-Match names another version than the current one."""

    def __init__(self, current: int) -> None:
        super().__init__(
            "version-conflict", f"the resource is at version {current}, not the one in If-Match"
        )
        self.current = current


def ensure_expected_version(current: int, expected: int | None) -> None:
    """Optimistic concurrency: a change made on an older (or newer) version is refused."""
    if expected is not None and expected != current:
        raise VersionMismatch(current)


class InvalidCommand(RuleViolation):
    """A command whose value is missing or of the wrong kind: the API answers 422 naming
    `element`. The boundary refuses these first; the aggregate refuses them again so that a
    route that forgot to validate still cannot store an event no reader can use."""

    def __init__(self, element: str, message: str) -> None:
        super().__init__("invalid-command", f"{element}: {message}")
        self.element = element


def required_person_identifier(value: object, element: str) -> None:
    """Whose data this is: an identifier with a system and a value."""
    if not isinstance(value, Mapping):
        raise InvalidCommand(element, "the person's identifier is required")
    required_text(value.get("system"), f"{element}.system")
    required_text(value.get("value"), f"{element}.value")


def required_text(value: object, element: str) -> str:
    """Text that must be there: a non-blank str without NUL or lone surrogates."""
    text = optional_text(value, element)
    if text is None or not text.strip():
        raise InvalidCommand(element, "a value is required")
    return text


def optional_text(value: object, element: str) -> str | None:
    """None, or text every store and every reader can hold."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCommand(element, f"text is expected, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidCommand(element, "text may not contain NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidCommand(element, "text may not contain lone surrogates") from None
    return value


def required_date(value: object, element: str) -> date:
    """A calendar date (a datetime is not one)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidCommand(element, "a date is required")
    return value


def optional_date(value: object, element: str) -> date | None:
    return None if value is None else required_date(value, element)


def required_instant(value: object, element: str) -> datetime:
    """A date and time."""
    if not isinstance(value, datetime):
        raise InvalidCommand(element, "a date and time is required")
    return value


def optional_instant(value: object, element: str) -> datetime | None:
    return None if value is None else required_instant(value, element)


def required_texts(values: object, element: str) -> list[str]:
    """A list of text values (ids, codes), each one present."""
    if not isinstance(values, list | tuple):
        raise InvalidCommand(element, "a list is expected")
    return [required_text(value, element) for value in values]
