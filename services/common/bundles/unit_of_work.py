"""The writes of one FHIR transaction, held until every entry has passed, then appended in one
store transaction.

While a unit of work is current for an application, its `save` does not write: the new events
(with the access records the write context adds, and the business identifiers claimed) are
taken from the aggregates and kept here, and the aggregates are kept as they now stand, so a
later entry of the same transaction loads and checks them as if the earlier entries had been
written. `commit` appends everything with one `Application.save`, which the event store's
recorder inserts in one database transaction with its hash chain links and identifier claims
(docs/decisions/0003): all of it or nothing. A version or identifier another writer took
meanwhile fails the whole append on the table's keys.

Access records of reads and refusals are held too: a read whose answer never leaves was no
disclosure, while a refusal is the record of an attempt and is written even when the
transaction is refused (`refusals`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

from services.common.access_log import REFUSED, AccessRecord
from services.common.audit.chain import CLAIMS_KEYWORD
from services.common.fhir_api import FhirError


def claim_key(claim: dict[str, str]) -> tuple[str, str, str, str]:
    return (claim["resource_type"], claim["organization"], claim["system"], claim["value"])


@dataclass
class UnitOfWork:
    application: Application[Any]
    aggregates: dict[UUID, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    claims: dict[tuple[str, str, str, str], dict[str, str]] = field(default_factory=dict)
    records: list[AccessRecord] = field(default_factory=list)

    def hold(self, objs: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """What `save(*objs, **kwargs)` would write, kept for `commit`."""
        claims = list(kwargs.pop(CLAIMS_KEYWORD, None) or ())
        if kwargs:
            raise TypeError(f"a unit of work holds no save option but claims: {sorted(kwargs)}")
        if any(claim_key(claim) in self.claims for claim in claims):
            # As the claims table would refuse it; the caller answers with the first one.
            raise IntegrityError("identifier claimed earlier in the transaction")
        for claim in claims:
            self.claims[claim_key(claim)] = claim
        for obj in objs:
            if isinstance(obj, AccessRecord):
                self.records.append(obj)
                continue
            self.events += obj.collect_events()
            self.aggregates[obj.id] = obj

    def claimed(self, key: tuple[str, str, str, str]) -> UUID | None:
        claim = self.claims.get(key)
        return UUID(claim["resource_id"]) if claim else None

    def commit(self) -> None:
        """Appends every held event and record in one recorder transaction."""
        records = [event for record in self.records for event in record.collect_events()]
        Application.save(
            self.application,
            *self.events,
            *records,
            **{CLAIMS_KEYWORD: list(self.claims.values())},
        )

    def refusals(self) -> None:
        """Writes only the records of refused attempts (the transaction itself is not made)."""
        refused = [record for record in self.records if record.outcome == REFUSED]
        if refused:
            Application.save(self.application, *refused)


_current: ContextVar[UnitOfWork | None] = ContextVar("unit_of_work", default=None)


def unit_of(application: Application[Any]) -> UnitOfWork | None:
    """The unit of work holding this application's writes now, if any."""
    unit = _current.get()
    return unit if unit is not None and unit.application is application else None


def refuse_reading_in_transaction(application: Application[Any], what: str) -> None:
    """A 400 for a read run as an entry of a transaction: it would answer from what is
    committed, not from what the transaction's earlier entries hold."""
    if unit_of(application) is not None:
        raise FhirError(
            400,
            "not-supported",
            f"{what} reads, and a transaction only writes: send it in a batch",
        )


@contextmanager
def holding_writes(application: Application[Any]) -> Iterator[UnitOfWork]:
    """Within the block (and the tasks and threads it starts, which copy the context), the
    application's saves are held in the unit of work it yields."""
    unit = UnitOfWork(application)
    token = _current.set(unit)
    try:
        yield unit
    finally:
        _current.reset(token)
