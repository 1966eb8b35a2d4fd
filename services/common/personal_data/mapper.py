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

The plain fields of the events this process just wrote are remembered for a while
(`JUST_WRITTEN_KEPT`), so reading them back at once (the read models' catch-up after a write)
does not open them again: served only for the very stored event (its stored bytes compared),
only once its write committed, and only while every key it was sealed under is kept by the key
store as it was (not erased, not expired, no erasure noticed since: `generation`), that is
exactly when opening would give the same value.

Fields are opened after the library's upcasters ran: an upcaster must not read a personal
field (none does: they add fields with defaults).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from threading import Lock, local
from typing import Any
from uuid import UUID

from eventsourcing.persistence import EventStore, Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from contracts.identifiers import (
    PERSON_ID_SYSTEMS,
    InvalidIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)
from contracts.personal_fields import PersonalFields
from services.common.personal_data.envelope import (
    DataKey,
    Erased,
    ErasedText,
    TamperedValue,
    seal_bytes,
)
from services.common.personal_data.in_write import DataKeyChanged, KeyUse, SealedStoredEvent
from services.common.personal_data.keys import PersonalDataKeys, UnknownDataKey

SEALED = "_sealed_"
_NOT_KNOWN: Any = object()


class SealedField(dict):  # type: ignore[type-arg]
    """A sealed value left sealed: it does not open here (tampered, or its key unknown)."""


class PersonUnknown(LookupError):
    """An event of a record whose person cannot be found (never created, or erased)."""


class SealingEventStore(EventStore[UUID]):
    """Seals the events again when their write found a key changed meanwhile (erased, or
    made first by another writer): the write was rolled back whole, the keys remembered live
    are forgotten, and the mapper's next look-up finds the key as it now is."""

    ATTEMPTS = 3

    def put(self, domain_events: Sequence[Any], **kwargs: Any) -> Any:
        mapper = self.mapper
        assert isinstance(mapper, PersonalDataMapper)
        for attempt in range(self.ATTEMPTS):
            made = mapper.sealing()
            try:
                recordings = super().put(domain_events, **kwargs)
            except DataKeyChanged:
                mapper.rolled_back()
                if attempt == self.ATTEMPTS - 1:
                    raise
                # Sealed again under the keys as the database now holds them.
                mapper.forget_live_keys()
                continue
            except BaseException:
                mapper.rolled_back()
                raise
            # Committed: the keys this write made are stored, the next writes' keys, and its
            # events' plain fields may be served to the reads that follow.
            mapper.stored(made)
            return recordings
        raise AssertionError("unreachable")


# What is remembered of an event just written, by `(stream.int, version)`: one flat tuple of
# the event as stored (another event of the same stream and version differs), the key store's
# generation when it was sealed, then each sealed field's name and its value as the transcoder
# wrote it before sealing. Only ints, texts and bytes, never a dict, a class of ours or a UUID:
# the garbage collector stops tracking such a tuple (CPython untracks an exact tuple of atoms),
# so the thousands kept, each written once and evicted later, neither add to what every full
# collection walks nor bring one about sooner (issue 16: full collections cost the encrypted
# writes about 20 µs a command, the plain ones none).
_JustWritten = tuple[bytes | int | str, ...]


class PersonalDataMapper(Mapper[UUID]):
    PEOPLE_KEPT = 10_000  # streams whose person is remembered, most recently used
    JUST_WRITTEN_KEPT = 4_000  # events whose plain fields are remembered after their write

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
        # The key each record's person is sealed under, by stream: its erasure is the record's.
        self._person_keys: OrderedDict[UUID, str | None] = OrderedDict()
        self._lock = Lock()
        # The keys made by the write this thread is sealing (SealingEventStore.put).
        self._writing = local()
        # The plain fields of events written by this process, by stream and version.
        self._just_written: OrderedDict[tuple[int, int], _JustWritten] = OrderedDict()
        self._just_written_generation = keys.generation

    def forget_live_keys(self) -> None:
        self._keys.forget_live_keys()

    @contextmanager
    def writing_records(self, records: Mapping[UUID, Any]) -> Iterator[None]:
        """While this thread stores the events of `records` (the aggregates being saved, by
        id): each tells the retention class of its author's entries (`retention_class_of`)."""
        before = getattr(self._writing, "records", None)
        self._writing.records = records
        try:
            yield
        finally:
            self._writing.records = before

    def _author_class(self, stream: UUID | str, state: Mapping[str, Any]) -> str | None:
        records = getattr(self._writing, "records", None) or {}
        record = records.get(stream if isinstance(stream, UUID) else UUID(str(stream)))
        class_of = getattr(record, "retention_class_of", None)
        return class_of(state) if class_of is not None else None

    def sealing(self) -> list[KeyUse]:
        """Starts this thread's write: the keys its events make are gathered in the list."""
        made: list[KeyUse] = []
        self._writing.made = made
        # Its events' plain fields, remembered only once it commits (`stored`): a write rolled
        # back (a key changed, a conflict) leaves nothing to serve.
        self._writing.sealed = []
        return made

    def stored(self, made: list[KeyUse]) -> None:
        """The write that made these keys committed."""
        self._keys.stored_by_write(made)
        sealed: list[tuple[tuple[int, int], _JustWritten]] | None
        sealed, self._writing.sealed = getattr(self._writing, "sealed", None), None
        if not sealed:
            return
        with self._lock:
            for event, remembered in sealed:
                self._just_written[event] = remembered
                self._just_written.move_to_end(event)
            while len(self._just_written) > self.JUST_WRITTEN_KEPT:
                self._just_written.popitem(last=False)

    def rolled_back(self) -> None:
        """The write this thread was sealing did not commit: none of its events is served."""
        self._writing.sealed = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        topic = get_topic(type(domain_event))
        declared = self._declared.get(topic)
        if declared is None:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        stream, version = state["originator_id"], state["originator_version"]
        if declared.person is not None and state.get(declared.person) is not None:
            person = PersonIdentifier(**state[declared.person])
            if declared.later_events:
                self._remember(stream, person)
        elif declared.person is not None:
            # A record about nobody (a search that matched no one): sealed under the person
            # whose number its text names, if any; with none named, nothing personal to seal.
            named = person_named_in(state, declared.person_named_in)
            if named is None:
                return super().to_stored_event(domain_event)
            person = named
        else:
            person = self._person_of(stream)
        prefix = _context(stream, version, topic)
        author_class = self._author_class(stream, state) if declared.by_author else None
        # Asked of the database once per event and class, only if there is a field.
        keys: dict[str, tuple[DataKey, KeyUse]] = {}
        plain_fields: dict[str, bytes] = {}
        generation = self._keys.generation
        for name in declared.fields:
            if state.get(name) is not None:
                retention_class = declared.class_of(name, author_class)
                if retention_class not in keys:
                    keys[retention_class] = self._keys.key_for_write(person, retention_class)
                key = keys[retention_class][0]
                # Sealed as the transcoder writes it, so dates and UUIDs open as themselves.
                plain = self.transcoder.encode(state[name])
                plain_fields[name] = plain
                state[name] = {SEALED: seal_bytes(key, plain, prefix + name.encode())}
        made = getattr(self._writing, "made", [])
        made += [use for _, use in keys.values() if use.new_row is not None]
        person_class = declared.class_of(declared.person or "", None)
        if declared.person is not None and declared.later_events and person_class in keys:
            self._remember_key(_uuid(stream), keys[person_class][0].key_id)
        # Stored as the library's Mapper.to_stored_event stores an event (this mapper has no
        # compressor or cipher), without building a stored event twice.
        del state["originator_id"], state["originator_version"]
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        stored_state = self.transcoder.encode(state)
        # Remembered only within a write of SealingEventStore.put, which tells its outcome.
        written = getattr(self._writing, "sealed", None)
        if plain_fields and written is not None:
            written.append(
                (
                    (_uuid(stream).int, version),
                    (stored_state, generation, *chain.from_iterable(plain_fields.items())),
                )
            )
        # The key goes with the event to the recorder, which checks or inserts it in the
        # write's own transaction (in_write.py).
        return SealedStoredEvent(
            originator_id=stream,
            originator_version=version,
            topic=topic,
            state=stored_state,
            data_keys=tuple(use for _, use in keys.values()),
        )

    def to_domain_event(
        self, stored_event: StoredEvent, *, left_sealed: Collection[str] = ()
    ) -> Any:
        """The event with its sealed fields opened, but those named in `left_sealed`: they
        stay as stored (a `SealedField`), for a reader that never uses their content."""
        domain_event = super().to_domain_event(stored_event)
        declared = self._declared.get(stored_event.topic)
        if declared is None:
            return domain_event
        state = vars(domain_event)
        stream, version = stored_event.originator_id, stored_event.originator_version
        prefix = b""  # made for the first field opened: none is, just after its write
        plain = self._plain_just_written(stored_event)
        for name in declared.fields:
            value = state.get(name)
            if isinstance(value, dict) and SEALED in value:
                if name == declared.person and declared.later_events:
                    self._remember_key(_uuid(stream), value[SEALED].get("k"))
                if name in left_sealed:
                    state[name] = SealedField(value)
                    continue
                # Not opened again just after its write, while its key is kept as it was.
                if name in plain and self._keys.kept(value[SEALED].get("k", "")):
                    state[name] = self.transcoder.decode(plain[name])
                    continue
                prefix = prefix or _context(stream, version, stored_event.topic)
                opened = self._open(value[SEALED], prefix + name.encode())
                # An author's text erased while its record is kept reads as a text naming the
                # erasure (the record's person key erased: the record is never built).
                if isinstance(opened, Erased) and name in declared.by_author:
                    opened = ErasedText(opened)
                state[name] = opened
        if (
            declared.person is not None
            and declared.later_events
            and isinstance(state.get(declared.person), dict)
        ):
            self._remember(_uuid(stream), PersonIdentifier(**state[declared.person]))
        return domain_event

    def _plain_just_written(self, stored_event: StoredEvent) -> dict[str, bytes]:
        """The plain fields of this very stored event, if this process just wrote it and no
        erasure was noticed since (then all are forgotten); else none."""
        if not self._just_written:
            return {}
        if self._keys.generation != self._just_written_generation:
            with self._lock:
                self._just_written.clear()
                self._just_written_generation = self._keys.generation
            return {}
        event = (_uuid(stored_event.originator_id).int, stored_event.originator_version)
        remembered = self._just_written.get(event)  # atomic
        if remembered is None:
            return {}
        if remembered[1] != self._just_written_generation or remembered[0] != bytes(
            stored_event.state
        ):
            return {}
        return dict(zip(remembered[2::2], remembered[3::2], strict=True))  # type: ignore[arg-type]

    def keep_keys_of(self, stored_events: Sequence[StoredEvent]) -> None:
        """Unwraps the keys these stored events' sealed fields name in one look-up, before
        they are opened one by one (a rebuild's batch, each person's key met once). The ids
        are read from the stored JSON without decoding it: a sealed value names its key in
        clear, first; a text field's quotes are escaped, so none can pass for one."""
        self._keys.keep_keys(
            match.decode()
            for stored in stored_events
            if self._declared.get(stored.topic) is not None
            for match in _SEALED_KEY_ID.findall(stored.state)
        )

    def opened_payload(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The event's stored JSON with its sealed fields opened, in the transcoder's JSON
        form, as it would be stored in clear (the whole-log feed's payload). A field that does
        not open (tampered, or its key unknown here) is left sealed, so a tampered log still
        reads and verification can name the break; an erased one reads as
        `{"erased": {"at", "rule"}}`."""
        payload = json.loads(stored_event.state)
        declared = self._declared.get(stored_event.topic)
        if declared is None or not isinstance(payload, dict):
            return payload
        for name in declared.fields:
            value = payload.get(name)
            if not (isinstance(value, dict) and SEALED in value):
                continue
            opened = self.opened_field(
                stored_event.originator_id,
                stored_event.originator_version,
                stored_event.topic,
                name,
                value,
            )
            if isinstance(opened, Erased):
                opened = {"erased": {"at": opened.erased_at, "rule": opened.rule}}
            payload[name] = opened
        return payload

    def opened_field(
        self, stream: UUID | str, version: int, topic: str, name: str, value: dict[str, Any]
    ) -> Any:
        """One field as stored (`{"_sealed_": ...}`) opened to its JSON form; `Erased` where
        its key was erased; a `SealedField` (the value as it was) where it does not open."""
        try:
            opened = self._keys.open_bytes(
                value[SEALED], _context(stream, version, topic) + name.encode()
            )
        except (TamperedValue, UnknownDataKey):
            return SealedField(value)
        return opened if isinstance(opened, Erased) else json.loads(opened)

    def person_erased(self, stream: UUID) -> Erased | None:
        """The erasure of the record's person (their key of the record's class), or None:
        alive, or stored in clear. Asked of the key store, whose kept copies expire, so a
        record erased by another process stops being served within `cache_seconds`."""
        # Asked before every read of a record: one dict look-up, atomic without the lock.
        key_id = self._person_keys.get(stream, _NOT_KNOWN)
        if key_id is _NOT_KNOWN:
            first = self._first_event(stream)
            declared = self._declared.get(first.topic) if first is not None else None
            key_id = None
            if first is not None and declared is not None and declared.person is not None:
                value = json.loads(first.state).get(declared.person)
                if isinstance(value, dict) and SEALED in value:
                    key_id = value[SEALED].get("k")
            self._remember_key(stream, key_id)
        if key_id is None:
            return None
        found = self._keys.key_of(key_id)
        return found if isinstance(found, Erased) else None

    def _remember_key(self, stream: UUID, key_id: str | None) -> None:
        with self._lock:
            self._person_keys[stream] = key_id
            self._person_keys.move_to_end(stream)
            while len(self._person_keys) > self.PEOPLE_KEPT:
                self._person_keys.popitem(last=False)

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


# The key id a sealed field names, as the transcoder writes it: {"_sealed_":{"k":"<id>",...
_SEALED_KEY_ID = re.compile(rb'"' + SEALED.encode() + rb'":\{"k":"([0-9a-f-]{36})"')

# A personnummer or samordningsnummer as a text may hold it: 12 digits, with or without the
# hyphen before the last four, not inside a longer run of digits.
_NUMBER_IN_TEXT = re.compile(r"(?<![0-9])([0-9]{8}-?[0-9]{4})(?![0-9])", re.ASCII)


def person_named_in(state: Mapping[str, Any], names: Sequence[str]) -> PersonIdentifier | None:
    """The first valid national identifier the text fields `names` hold, if any."""
    for name in names:
        text = state.get(name)
        if not isinstance(text, str):
            continue
        for found in _NUMBER_IN_TEXT.findall(text):
            for system in PERSON_ID_SYSTEMS:
                try:
                    return parse_person_identifier(system, found)
                except InvalidIdentifier:
                    continue
    return None


def _uuid(stream: UUID | str) -> UUID:
    return stream if isinstance(stream, UUID) else UUID(str(stream))


def _context(stream: UUID | str, version: int, topic: str) -> bytes:
    """The associated data of an event's sealed fields, before the field's name."""
    # The stream as one spelling whichever the recorder gives (a UUID, or its hex on SQLite).
    return f"{_uuid(stream)}\x00{version}\x00{topic}\x00".encode()
