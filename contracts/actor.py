"""Who does something: taken from a verified bearer token, recorded on every event and every
access record."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["coordinator", "professional", "integration", "auditor", "patient"]
ROLES: tuple[str, ...] = ("coordinator", "professional", "integration", "auditor", "patient")


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    organization: str | None = None  # HSA-id of the care provider or municipality
    unit: str | None = None  # HSA-id of the unit the user acts from
    scopes: tuple[str, ...] = ()
    patient: str | None = None  # for role `patient`: the personnummer the user is or represents

    def as_event_data(self) -> dict[str, str | None]:
        """What an event records of its author (never the scopes, never a personnummer)."""
        return {
            "subject": self.subject,
            "role": self.role,
            "organization": self.organization,
            "unit": self.unit,
        }
