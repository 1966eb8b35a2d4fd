"""Read models of the SIP service, rebuilt from its event log."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    or_,
    select,
)
from sqlalchemy.engine import Connection

from contracts.actor import Actor
from services.common.business_identifiers import BusinessIdentifier, identified_ids
from services.common.personal_data.lookup import searched_persons
from services.common.projection import AggregateIndex
from services.sip.domain import Plan

metadata = MetaData()
plan_index = Table(
    "plan_index",
    metadata,
    Column("plan_id", String(36), primary_key=True),
    Column("subject_system", String(200), nullable=False),
    Column("subject_value", String(64), nullable=False, index=True),
    Column("starting_organization", String(64), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("period_start", DateTime(timezone=True)),
    Column("period_end", DateTime(timezone=True)),
    Column("next_follow_up", Date, index=True),
    Column("overall_responsible", String(64)),
)
# One row per organisation and how it takes part: `member` (in the care team),
# `responsible` (for an intervention, or overall) or, while the plan is open,
# `invitation-pending` (invited, its acceptance not yet given).
plan_organizations = Table(
    "plan_organizations",
    metadata,
    Column("plan_id", String(36), primary_key=True),
    Column("hsa_id", String(64), primary_key=True, index=True),
    Column("role", String(20), primary_key=True),
)


# The consents each plan relied on, to find the plans a withdrawal concerns.
plan_consents = Table(
    "plan_consents",
    metadata,
    Column("plan_id", String(36), primary_key=True),
    Column("consent_id", String(36), primary_key=True, index=True),
)


class PlanIndex(AggregateIndex):
    """Finds plans by subject, status, period, organisation, follow-up date and pending
    invitation."""

    name = "plan_index"
    metadata = metadata
    aggregate_class = Plan
    index = plan_index

    def row(self, plan: Plan, event: Any) -> dict[str, Any]:
        return {
            "subject_system": plan.subject["system"],
            "subject_value": self.person_stored(plan.subject),
            "starting_organization": plan.starting_organization,
            "status": plan.status,
            "version": plan.version,
            "last_updated": event.timestamp,
            "period_start": plan.activated_at,
            "period_end": plan.closure.at if plan.closure else None,
            "next_follow_up": None if plan.closure else plan.next_follow_up,
            "overall_responsible": plan.overall_responsible,
        }

    def apply_related(self, connection: Connection, plan: Plan) -> None:
        plan_id = str(plan.id)
        connection.execute(
            plan_organizations.delete().where(plan_organizations.c.plan_id == plan_id)
        )
        memberships = {(hsa_id, "member") for hsa_id in plan.organizations}
        memberships |= {
            (intervention.responsible_organization, "responsible")
            for intervention in plan.interventions.values()
        }
        memberships.add((plan.overall_responsible, "responsible"))
        if plan.closure is None:  # a closed plan takes no answer: nothing waits for one
            memberships |= {(hsa_id, "invitation-pending") for hsa_id in plan.invitations_pending}
        # Events stored before the domain refused them may name no organisation (`hsa_id:
        # None`): no search can find a plan by a missing HSA-id, so they get no row.
        rows = [
            {"plan_id": plan_id, "hsa_id": hsa_id, "role": role}
            for hsa_id, role in memberships
            if hsa_id
        ]
        if rows:
            connection.execute(plan_organizations.insert(), rows)
        connection.execute(plan_consents.delete().where(plan_consents.c.plan_id == plan_id))
        if plan.consents:
            connection.execute(
                plan_consents.insert(),
                [{"plan_id": plan_id, "consent_id": consent_id} for consent_id in plan.consents],
            )

    def relying_on(self, consent_id: str) -> list[UUID]:
        """The plans activated on this consent."""
        return self.ids(
            select(plan_consents.c.plan_id).where(plan_consents.c.consent_id == consent_id)
        )

    def search(
        self,
        *,
        subject: tuple[str | None, str] | None = None,
        status: Collection[str] | None = None,
        period_from: datetime | None = None,
        period_to: datetime | None = None,
        member: str | None = None,
        responsible: str | None = None,
        follow_up_due_by: date | None = None,
        invitation_pending: str | None = None,
        identifier: BusinessIdentifier | None = None,
    ) -> list[UUID]:
        columns = plan_index.c
        query = self.identified_by(
            self.newest_first(), columns.subject_system, columns.subject_value, subject
        )
        if identifier is not None:  # written with the creation event: no catching up
            query = query.where(columns.plan_id.in_(identified_ids("CarePlan", identifier)))
        if status is not None:
            query = query.where(columns.status.in_(sorted(status)))
        if period_from is not None:  # the plan's period reaches past this instant
            query = query.where(
                or_(columns.period_end.is_(None), columns.period_end >= period_from)
            )
        if period_to is not None:  # the plan's period started by this instant
            query = query.where(
                and_(columns.period_start.is_not(None), columns.period_start <= period_to)
            )
        if follow_up_due_by is not None:
            query = query.where(columns.next_follow_up <= follow_up_due_by)
        for hsa_id, role in (
            (member, "member"),
            (responsible, "responsible"),
            (invitation_pending, "invitation-pending"),
        ):
            if hsa_id is not None:
                query = self.related(query, plan_organizations, hsa_id=hsa_id, role=role)
        return self.ids(query)


class PartyIndex(AggregateIndex):
    """A read model of records (stays, messages) found by the organisations and units taking
    part (`parties`: the id and `hsa_id`) and by the person's blind index (the `person` column
    of `index`, services/common/personal_data/blind_index.py: never the number). It narrows a
    request to the records that may concern its caller; it never decides what the caller
    sees: each record it names is still loaded and passed through its disclosure rule."""

    parties: Table

    @staticmethod
    def parties_table(name: str, metadata: MetaData, id_column: str) -> Table:
        """The table of the organisations and units taking part in each record: a row per
        (record, HSA-id), found by the HSA-id."""
        return Table(
            name,
            metadata,
            Column(id_column, String(36), primary_key=True),
            Column("hsa_id", String(64), primary_key=True, index=True),
        )

    def replace_parties(
        self, connection: Connection, record_id: str, parties: Iterable[object]
    ) -> None:
        """The record's parties as they are now; a missing HSA-id (None, empty) gets no row."""
        id_column = self.parties.c[self._id_column.name]
        connection.execute(self.parties.delete().where(id_column == record_id))
        named = sorted({p for p in parties if isinstance(p, str) and p})
        if named:
            connection.execute(
                self.parties.insert(), [{id_column.name: record_id, "hsa_id": p} for p in named]
            )

    def ids(self, query: Select[Any], parameters: dict[str, Any] | None = None) -> list[UUID]:
        # Queries here are unordered (an ORDER BY may make the database walk the whole key
        # rather than the condition's index): what they find is sorted here.
        return sorted(super().ids(query, parameters), key=str)

    def concerning(self, hsa_id: str) -> list[UUID]:
        """The records an organisation or unit takes part in."""
        parties = self.parties.c
        return self.ids(select(parties[self._id_column.name]).where(parties.hsa_id == hsa_id))

    def of_person(self, value: str) -> list[UUID]:
        """A person's records, by their blind index under either national identifier system."""
        keys = getattr(self.application, "personal_data", None)
        stored = searched_persons(keys, None, value)
        return self.ids(select(self._id_column).where(self.index.c.person.in_(stored)))

    def candidates_for(self, actor: Actor) -> list[UUID]:
        """The records that may concern the caller: the patient's own, or those the caller's
        organisation takes part in (the disclosure rules show nothing else)."""
        if actor.role == "patient":
            return self.of_person(actor.patient) if actor.patient else []
        return self.concerning(actor.organization) if actor.organization else []
