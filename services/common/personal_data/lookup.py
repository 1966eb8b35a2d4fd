"""What a read model stores for a person's identifier, and what a search by one looks for:
the blind index (blind_index.py, under the database's index key), never the number
(docs/decisions/0007). Where a service runs without the key store, the number itself, so a
read model and its searches always agree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.identifiers import PERSON_ID_SYSTEMS, InvalidIdentifier, PersonIdentifier
from services.common.personal_data.blind_index import stored_blind_index
from services.common.personal_data.keys import PersonalDataKeys


def stored_person(keys: PersonalDataKeys | None, person: Mapping[str, Any] | None) -> str | None:
    """The value a read model keeps for `{"system", "value"}` (None for None)."""
    if person is None or person.get("value") is None:
        return None
    return person_index(keys, person.get("system"), str(person["value"]))


def person_index(keys: PersonalDataKeys | None, system: str | None, value: str) -> str:
    if keys is None:
        return value
    try:
        # Remembered per person by the key store: a read model meets a person on each of
        # their records (every access record), a rebuild on every event.
        return keys.person_index(PersonIdentifier(str(system), value))
    except InvalidIdentifier:
        return stored_blind_index(keys.index_key(), system, value)


def searched_persons(keys: PersonalDataKeys | None, system: str | None, value: str) -> list[str]:
    """The stored values a search for `(system, value)` matches: with no system, the number
    under each national identifier system (a stored identifier names its system)."""
    systems = (system,) if system else PERSON_ID_SYSTEMS
    return sorted({person_index(keys, one, value) for one in systems})
