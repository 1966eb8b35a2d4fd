"""The stays' read model (issue 15): which stays a request may concern, found by indexed
columns, so a search, a Task list, a payment report or the legal clock's round loads only
those stays, not every stay in the store.

The index narrows, it never decides what a caller sees: every stay it names is still loaded
and passed through the stays' one disclosure rule (`StayDisclosure`, `redact_stay`) and the
request's own conditions. It holds nothing personal: the person is found by the blind index
(services/common/personal_data/blind_index.py), and an erased person's rows go on rebuild
(`AggregateIndex.forget`; `sip retention run` rebuilds the read models).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, Column, DateTime, Index, MetaData, String, Table, select
from sqlalchemy.engine import Connection

from services.sip.discharge.clock import ClockRules, deadlines
from services.sip.discharge.stay import Stay
from services.sip.projections import PartyIndex

LAW = ClockRules()
metadata = MetaData()
stay_index = Table(
    "stay_index",
    metadata,
    Column("stay_id", String(36), primary_key=True),
    # The person's blind index (never the number): a patient's own stays.
    Column("person", String(64), index=True),
    Column("status", String(20), nullable=False),
    Column("municipality", String(64)),
    Column("discharged_at", DateTime(timezone=True)),
    # The earliest due time, under the law's periods, of a deadline the clock has yet to
    # record as missed (open, or done late and not recorded): when the timed check must look.
    Column("next_due", DateTime(timezone=True), index=True),
    # Missed deadlines the stay has not yet handed to its plan as deviations (the SIP called):
    # cleared by the clock's record of each handing (`Stay.DeviationRaised`).
    Column("deviations_pending", Boolean, nullable=False, index=True),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Index("ix_stay_index_municipality_discharged", "municipality", "discharged_at"),
)
# Every organisation and unit the stay concerns: the hospital and its ward, each recipient of
# the admission notice and its unit, the fixed care contact's.
stay_parties = PartyIndex.parties_table("stay_parties", metadata, "stay_id")


def next_due(stay: Stay, rules: ClockRules = LAW) -> datetime | None:
    recorded = {(m.duty, m.due) for m in stay.deadlines_missed}
    dues = [
        d.due
        for d in deadlines(stay, rules)
        if (d.duty, d.due) not in recorded
        and not d.provisional
        and (d.done_at is None or d.done_at > d.due)
    ]
    return min(dues, default=None)


class StayIndex(PartyIndex):
    """Finds the stays a caller may be concerned by, a municipality's month and the stays the
    legal clock must look at."""

    name = "stay_index"
    metadata = metadata
    aggregate_class = Stay
    index = stay_index
    parties = stay_parties

    def row(self, stay: Stay, event: Any) -> dict[str, Any]:
        return {
            "person": self.person_stored(stay.subject),
            "status": stay.status,
            "municipality": stay.municipality,
            "discharged_at": stay.discharged.at if stay.discharged else None,
            "next_due": next_due(stay),
            "deviations_pending": bool(stay.deviations_owed),
            "last_updated": event.timestamp,
        }

    def apply_related(self, connection: Connection, stay: Stay) -> None:
        parties = {stay.organization, stay.ward}
        for recipient in stay.recipients.values():
            parties |= {recipient.organization, recipient.unit}
        if stay.care_contact is not None:
            parties |= {stay.care_contact.organization, stay.care_contact.unit}
        self.replace_parties(connection, str(stay.id), parties)

    def discharged_between(self, municipality: str, start: datetime, end: datetime) -> list[UUID]:
        """A municipality's stays discharged in [start, end)."""
        columns = stay_index.c
        return self.ids(
            select(stay_index.c.stay_id).where(
                columns.municipality == municipality,
                columns.discharged_at >= start,
                columns.discharged_at < end,
            )
        )

    def clock_due(self, now: datetime) -> list[UUID]:
        """The stays the legal clock must look at `now` (under the law's periods)."""
        columns = stay_index.c
        due = self.ids(select(stay_index.c.stay_id).where(columns.next_due <= now))
        owed = self.ids(select(stay_index.c.stay_id).where(columns.deviations_pending.is_(True)))
        return sorted({*due, *owed}, key=str)
