"""The eventsourcing library's mapper, sealing each declared personal field of an event
(contracts/personal_fields.py) with its person's data key before the event is stored, and
opening it again when the event is read (docs/decisions/0007).

The recorder, the hash chain and the signed checkpoints see only the sealed bytes, so
`sip audit verify` needs no key and still holds after an erasure. A sealed field is stored as
`{"_sealed_": {"k", "n", "c"}}` with the event's stream, version, topic and field name as
associated data: a ciphertext moved to another event or field does not open. Each value is
sealed as the transcoder's JSON of it, so dates and UUIDs open as themselves. A field whose
key was erased reads as `Erased`. Events stored in clear (before encryption was switched on)
read as they are.

Fields are opened after the library's upcasters ran: an upcaster must not read a personal
field (none does: they add fields with defaults).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from threading import Lock
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from contracts.identifiers import PersonIdentifier
from contracts.personal_fields import PersonalFields
from services.common.personal_data.envelope import Erased, seal_bytes
from services.common.personal_data.keys import PersonalDataKeys

SEALED = "_sealed_"


class PersonUnknown(LookupError):
    """An event of a record whose person cannot be found (never created, or erased)."""


class PersonalDataMapper(Mapper[UUID]):
    PEOPLE_KEPT = 10_000  # streams whose person is remembered, most recently used

    def __init__(
        self,
        transcoder: Transcoder,
        keys: PersonalDataKeys,
        declared: Mapping[str, PersonalFields],
        first_event: Callable[[UUID], StoredEvent | None],
    ) -> None:
        super().__init__(transcoder)
        self._keys = keys
        self._declared = declared
        self._first_event = first_event  # the stream's creation event, as stored
        self._people: OrderedDict[UUID, PersonIdentifier] = OrderedDict()
        self._lock = Lock()

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        topic = get_topic(type(domain_event))
        declared = self._declared.get(topic)
        if declared is None:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        stream, version = state["originator_id"], state["originator_version"]
        if declared.person is not None:
            person = PersonIdentifier(**state[declared.person])
            self._remember(stream, person)
        else:
            person = self._person_of(stream)
        prefix = _context(stream, version, topic)
        key = None  # asked of the database once per event, only if a field is there to seal
        for name in declared.fields:
            if state.get(name) is not None:
                key = key or self._keys.key_for(person, declared.retention_class)
                # Sealed as the transcoder writes it, so dates and UUIDs open as themselves.
                plain = self.transcoder.encode(state[name])
                state[name] = {SEALED: seal_bytes(key, plain, prefix + name.encode())}
        sealed = object.__new__(type(domain_event))
        object.__setattr__(sealed, "__dict__", state)
        return super().to_stored_event(sealed)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        domain_event = super().to_domain_event(stored_event)
        declared = self._declared.get(stored_event.topic)
        if declared is None:
            return domain_event
        state = vars(domain_event)
        stream, version = stored_event.originator_id, stored_event.originator_version
        prefix = _context(stream, version, stored_event.topic)
        for name in declared.fields:
            value = state.get(name)
            if isinstance(value, dict) and SEALED in value:
                state[name] = self._open(value[SEALED], prefix + name.encode())
        if declared.person is not None and isinstance(state.get(declared.person), dict):
            self._remember(UUID(str(stream)), PersonIdentifier(**state[declared.person]))
        return domain_event

    def _open(self, sealed: dict[str, str], context: bytes) -> Any:
        opened = self._keys.open_bytes(sealed, context)
        return opened if isinstance(opened, Erased) else self.transcoder.decode(opened)

    def _person_of(self, stream: UUID) -> PersonIdentifier:
        with self._lock:
            if stream in self._people:
                self._people.move_to_end(stream)
                return self._people[stream]
        first = self._first_event(stream)
        if first is None:
            raise PersonUnknown(f"no creation event of {stream}")
        self.to_domain_event(first)  # remembers its person, if it still opens
        with self._lock:
            if stream not in self._people:
                raise PersonUnknown(f"the person of {stream} was erased")
            return self._people[stream]

    def _remember(self, stream: UUID, person: PersonIdentifier) -> None:
        with self._lock:
            self._people[stream] = person
            self._people.move_to_end(stream)
            while len(self._people) > self.PEOPLE_KEPT:
                self._people.popitem(last=False)


def _context(stream: UUID | str, version: int, topic: str) -> bytes:
    """The associated data of an event's sealed fields, before the field's name."""
    # The stream as one spelling whichever the recorder gives (a UUID, or its hex on SQLite).
    stream = stream if isinstance(stream, UUID) else UUID(stream)
    return f"{stream}\x00{version}\x00{topic}\x00".encode()
