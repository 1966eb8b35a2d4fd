"""Who does something: taken from a verified bearer token, recorded on every event and every
access record."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

Role = Literal["coordinator", "professional", "integration", "auditor", "patient"]
ROLES: tuple[str, ...] = ("coordinator", "professional", "integration", "auditor", "patient")


def _printable(value: str) -> str:
    # An actor's names are written into events and access records: a NUL, a control character
    # or a lone surrogate there would make the record unwritable (PostgreSQL) or unreadable.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValueError("holds a control character or a lone surrogate")
    return value


ActorName = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(_printable)
]


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: ActorName
    role: Role
    organization: ActorName | None = None  # HSA-id of the care provider or municipality
    unit: ActorName | None = None  # HSA-id of the unit the user acts from
    scopes: tuple[str, ...] = ()
    patient: ActorName | None = (
        None  # for role `patient`: the personnummer the user is or represents
    )

    def as_event_data(self) -> dict[str, str | None]:
        """What an event records of its author (never the scopes, never a personnummer)."""
        return {
            "subject": self.subject,
            "role": self.role,
            "organization": self.organization,
            "unit": self.unit,
        }
