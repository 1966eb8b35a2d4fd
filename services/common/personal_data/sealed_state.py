"""Where a stored event's sealed personal fields are, in either form the log holds them
(docs/decisions/0007). Every reader of stored events (the mapper, the feed, the access-log
index, the retention scan, a rebuild's key prefetch) finds them here, so that both read alike:

- **per field** (events stored before stop 30): each sealed field's value is
  `{"_sealed_": {"k", "n", "c"}}`, its plain text the transcoder's JSON of that one value, its
  associated data the event's context and the field's name;
- **per class**: one top-level `"_sealed_"` list of `{"k", "f", "n", "c"}`, one envelope for
  the fields of one retention class (`f`, their names), its plain text the transcoder's JSON
  object of those fields, its associated data the event's context, a 0x01 byte and the names
  joined by NUL bytes: fields moved between envelopes or events do not open, nor does a
  per-field value passed off as an envelope (no field's name starts with 0x01).

One envelope per event and class seals about half as many values as one per field (an access
record's `patient` and `detail` together), which is most of what it costs to write them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.personal_data.envelope import DataKey, TamperedValue, seal_bytes

SEALED = "_sealed_"
_ENVELOPE_MARK = b"\x01"


@dataclass(frozen=True)
class SealedPart:
    """One sealed value of a stored event: a field's own, or an envelope of several."""

    names: tuple[str, ...]
    sealed: Mapping[str, Any]  # as stored: "k", "n", "c" (and an envelope's "f")
    per_field: bool

    @property
    def key_id(self) -> str | None:
        key_id = self.sealed.get("k")
        return key_id if isinstance(key_id, str) else None

    def context(self, event_context: bytes) -> bytes:
        if not self.names:
            raise TamperedValue("not a sealed envelope")
        if self.per_field:
            return event_context + self.names[0].encode()
        return event_context + _ENVELOPE_MARK + "\x00".join(self.names).encode()

    def fields(self, plain: bytes, decode: Callable[[bytes], Any]) -> dict[str, Any]:
        """The fields its opened plain text holds, each decoded by `decode` (the transcoder's
        decode for the domain's values, `json.loads` for their JSON form)."""
        if self.per_field:
            return {self.names[0]: decode(plain)}
        opened = decode(plain)
        if not isinstance(opened, dict) or list(opened) != list(self.names):
            raise TamperedValue("an envelope holds other fields than it names")
        return opened

    def stored(self) -> dict[str, Any]:
        """The part as the stored state holds it, to keep it sealed elsewhere (`merged`)."""
        if self.per_field:
            return {self.names[0]: {SEALED: dict(self.sealed)}}
        return {SEALED: [dict(self.sealed)]}


def sealed_parts(
    state: Mapping[str, Any], declared: Collection[str] | None = None
) -> list[SealedPart]:
    """The sealed parts of a stored state (its JSON, or the transcoder's decoding of it), of
    the fields `declared` only where given. A malformed envelope is kept as a part naming no
    field, which does not open (TamperedValue): never passed over, as if nothing were there."""
    parts = []
    envelopes = state.get(SEALED)
    for envelope in envelopes if isinstance(envelopes, list) else ():
        names = envelope.get("f") if isinstance(envelope, dict) else None
        if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
            parts.append(SealedPart((), envelope if isinstance(envelope, dict) else {}, False))
        elif declared is None or not names or any(name in declared for name in names):
            parts.append(SealedPart(tuple(names), envelope, per_field=False))
    for name in state if declared is None else declared:
        value = state.get(name)
        if isinstance(value, dict) and isinstance(value.get(SEALED), dict):
            parts.append(SealedPart((name,), value[SEALED], per_field=True))
    return parts


def person_key_id(state: Mapping[str, Any], person: str) -> str | None:
    """The key of the part of a record's creation event that holds its person (the field
    `person`), if sealed: the record's own key, whose erasure is the record's."""
    parts = sealed_parts(state, (person,))
    return next((part.key_id for part in parts if person in part.names), None)


def merged(parts: list[SealedPart]) -> dict[str, Any]:
    """Parts as a stored state would hold them, for a row that keeps them sealed."""
    state: dict[str, Any] = {}
    for part in parts:
        for name, value in part.stored().items():
            if name == SEALED:
                state.setdefault(SEALED, []).extend(value)
            else:
                state[name] = value
    return state


def seal_envelope(
    key: DataKey, names: tuple[str, ...], plain: bytes, event_context: bytes
) -> dict[str, Any]:
    """The envelope of fields `names` of one class, `plain` their transcoded JSON object."""
    part = SealedPart(names, {}, per_field=False)
    sealed = seal_bytes(key, plain, part.context(event_context))
    # The key first, as a per-field value names it: a rebuild's prefetch finds both alike.
    return {"k": sealed["k"], "f": list(names), "n": sealed["n"], "c": sealed["c"]}
