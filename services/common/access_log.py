"""The access log (PDL 4 kap. 3 §): every read, search, write and disclosure decision.

Each access is an `AccessRecord` aggregate saved in the service's own event store, so the log
is append-only, survives restarts and is replayable like every other event. A read is logged
before its answer leaves; if the record cannot be written the answer is not sent (fail
closed). A write's record is saved in the same transaction as the write's events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

# BALP / AuditEvent.action: C create, R read (also search), U update, D delete, E execute.
ACTION_OF_INTERACTION = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "R",
    "search-type": "R",
    "update": "U",
    "operation": "E",
    "disclosure-decision": "E",
}
# AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure.
SUCCESS, REFUSED = "0", "4"


class AccessRecord(Aggregate):
    @event("Recorded")
    def __init__(
        self,
        *,
        interaction: str,
        action: str,
        outcome: str,
        actor: dict[str, Any],
        patient: dict[str, str] | None,
        custodian: str | None,
        entity: str | None,
        consents: list[str],
        query: str | None,
        detail: str | None,
        recorded_at: datetime,
    ) -> None:
        self.interaction = interaction
        self.action = action
        self.outcome = outcome
        self.actor = actor
        self.patient = patient
        self.custodian = custodian  # the organisation whose data was accessed
        self.entity = entity
        self.consents = consents
        self.query = query
        self.detail = detail
        self.recorded_at = recorded_at


@dataclass(frozen=True)
class WriteContext:
    """Who writes and how, for the records that go with the write's events."""

    actor: dict[str, Any]
    interaction: str
    resource_type: str
    at: datetime
    consents: tuple[str, ...] = ()
    detail: str | None = None


current_write: ContextVar[WriteContext | None] = ContextVar("current_write", default=None)


def records_for_write(
    context: WriteContext,
    aggregates: list[Any],
    resource_type_of: Callable[[Any], str | None] = lambda aggregate: None,
) -> list[AccessRecord]:
    """One record per changed aggregate, naming the version the write produced and the
    aggregate's own resource type (a write may save more than the one it is about: a stay's
    notice and its message, a SIP call's plan)."""
    records = []
    for aggregate in aggregates:
        pending = getattr(aggregate, "_pending_events", None)
        if not pending or isinstance(aggregate, AccessRecord):
            continue
        created = pending[0].originator_version == 1
        records.append(
            AccessRecord(
                interaction="create" if created else context.interaction,
                action="C" if created else ACTION_OF_INTERACTION.get(context.interaction, "U"),
                outcome=SUCCESS,
                actor=context.actor,
                patient=aggregate.person_identifier,
                custodian=aggregate.custodian,
                entity=f"{resource_type_of(aggregate) or context.resource_type}/{aggregate.id}"
                f"/_history/{aggregate.version}",
                consents=list(context.consents or getattr(aggregate, "relied_on_consents", ())),
                query=None,
                # Which command: what the client called it, else the events it produced.
                detail=context.detail or ", ".join(type(e).__name__ for e in pending),
                recorded_at=context.at,
            )
        )
    return records


@contextmanager
def writing(context: WriteContext) -> Iterator[None]:
    """Saves made inside the block carry their access records."""
    token = current_write.set(context)
    try:
        yield
    finally:
        current_write.reset(token)
