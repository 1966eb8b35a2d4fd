"""Which of the feed's events a caller gets, and whether with their content.

The feed is no side door: a record system gets only the events of records the API would show
it, decided by the resource type's disclosure rule (`services/common/disclosure.py`); an
auditor gets their own organisation's events and access records; only a reader granted the
whole log by configuration gets every event as stored. An event of a record the caller sees,
made by a custodian whose entries the caller may not see, appears with its position and type
and its content withheld, so the caller knows something is there and is never told what.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from contracts.actor import Actor
from services.common.access_log import SUCCESS
from services.common.disclosure import Discloser, Disclosure, basis_of, custodian_of
from services.common.domain import NotFound

WITHHELD_REASON = "an entry of a custodian whose information is not disclosed to the caller"


@dataclass(frozen=True)
class Verdict:
    shown: bool  # the event appears in the page at all
    content: bool  # with its payload and author
    consents: tuple[str, ...] = ()  # what disclosing it relied on


OMITTED = Verdict(False, False)
WITHHELD = Verdict(True, False)
WHOLE = Verdict(True, True)


@dataclass(frozen=True)
class FeedEvent:
    """What a verdict needs of one stored event."""

    aggregate_id: UUID
    topic: str
    author: Mapping[str, Any] | None
    payload: Mapping[str, Any]
    access_record: bool  # an event of the access log's own aggregate
    record_custodian: str | None  # whose record the event belongs to (its creation event's)


# A caller's rule: the verdict on each event of a page.
FeedRule = Callable[[FeedEvent], Verdict]
# The kind of entry an event's topic records, where a kind is withheld whoever its custodian
# is (a plan's cost shares, which only the principals see); None for every other event.
EntryKind = Callable[[str], str | None]


def no_entry_kind(topic: str) -> str | None:
    return None


def whole_log(_: FeedEvent) -> Verdict:
    return WHOLE


class RecordSystemRule:
    """An integration client gets what the API would disclose to it: the records its
    disclosure rule shows, the entries of custodians it sees, and no access records (the
    access log is the auditors'; a record system reads its own accesses nowhere else either).
    Each record is loaded once per page and asked about once."""

    def __init__(
        self,
        actor: Actor,
        disclose: Discloser,
        load: Callable[[UUID], Any],
        entry_kind: EntryKind = no_entry_kind,
    ) -> None:
        self.actor, self.disclose, self.load = actor, disclose, load
        self.entry_kind = entry_kind
        self._disclosures: dict[UUID, Disclosure | None] = {}

    def __call__(self, event: FeedEvent) -> Verdict:
        if event.access_record:
            return OMITTED
        disclosure = self._disclosure(event.aggregate_id)
        if disclosure is None:
            return OMITTED
        kind = self.entry_kind(event.topic)
        custodian = custodian_of(event.author)
        if disclosure.sees_entry(kind, custodian, basis_of(event.payload)):
            return Verdict(True, True, disclosure.consents)
        return Verdict(True, False, disclosure.consents)

    def disclosure(self, aggregate_id: UUID) -> Disclosure | None:
        """What the caller may see of the record (None: nothing), asked once per rule."""
        return self._disclosure(aggregate_id)

    def _disclosure(self, aggregate_id: UUID) -> Disclosure | None:
        if aggregate_id not in self._disclosures:
            try:
                self._disclosures[aggregate_id] = self.disclose(self.load(aggregate_id), self.actor)
            except NotFound:
                self._disclosures[aggregate_id] = None
        return self._disclosures[aggregate_id]


class AuditorRule:
    """An auditor reviews their own organisation: the entries it made in full; in records it
    is the custodian of, the frame in full and the others' entries withheld; the access
    records of what its users did and of what was done to its data, as `GET /fhir/AuditEvent`
    shows them. Nothing of records it has no part in."""

    def __init__(self, organization: str | None) -> None:
        self.organization = organization

    def __call__(self, event: FeedEvent) -> Verdict:
        if self.organization is None:
            return OMITTED
        if event.access_record:
            return WHOLE if self._own_access_record(event.payload) else OMITTED
        entry_custodian = custodian_of(event.author)
        if entry_custodian == self.organization:
            return WHOLE
        if event.record_custodian == self.organization:
            return WHOLE if entry_custodian is None else WITHHELD
        return OMITTED

    def _own_access_record(self, payload: Mapping[str, Any]) -> bool:
        actor = transcoded(payload.get("actor"))
        by_own_user = isinstance(actor, dict) and actor.get("organization") == self.organization
        # A refused attempt on another's data stays with that custodian, as in the AuditEvent
        # search: the record names a person this organisation may not know of.
        succeeded = transcoded(payload.get("outcome")) == SUCCESS
        return (by_own_user and succeeded) or transcoded(payload.get("custodian")) == (
            self.organization
        )


def transcoded(value: Any) -> Any:
    """A value as the library's JSON transcoder wrote it ({"_type_": ..., "_data_": ...})."""
    return value.get("_data_") if isinstance(value, dict) and "_data_" in value else value
