"""The keyed hash by which a person is found without their number stored in clear.

HMAC-SHA256 over the identifier's system and its 12-digit form, so the two spellings of one
personnummer (with and without the hyphen) index alike. Keyed, because personnummer are few
enough (about 36 million a century) that a plain hash is reversed by trying them all; the
key is kept wrapped by the master key (keys.py), never beside the indexes in clear."""

from __future__ import annotations

import hashlib
import hmac

from contracts.identifiers import InvalidIdentifier, PersonIdentifier, parse_person_identifier


def normalised(person: PersonIdentifier) -> bytes:
    """Raises InvalidIdentifier for what is not a personnummer or samordningsnummer."""
    parsed = parse_person_identifier(person.system, person.value)
    return f"{parsed.system}|{parsed.value}".encode()


def blind_index(index_key: bytes, person: PersonIdentifier) -> str:
    return hmac.new(index_key, normalised(person), hashlib.sha256).hexdigest()


def stored_blind_index(index_key: bytes, system: str | None, value: str) -> str:
    """The index of an identifier as a record holds it: normalised where it is a national
    identifier, else (stored before identifiers were checked) as it is spelt, still keyed."""
    try:
        return blind_index(index_key, PersonIdentifier(str(system), value))
    except InvalidIdentifier:
        return hmac.new(index_key, f"{system}|{value}".encode(), hashlib.sha256).hexdigest()
