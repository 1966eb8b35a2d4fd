"""Read models of the consent service, rebuilt from its event log."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, bindparam, select
from sqlalchemy.engine import Connection

from services.common.business_identifiers import BusinessIdentifier, identified_ids
from services.common.personal_data.lookup import searched_persons
from services.common.projection import AggregateIndex
from services.consent.domain import Consent

metadata = MetaData()
consent_index = Table(
    "consent_index",
    metadata,
    Column("consent_id", String(36), primary_key=True),
    Column("patient_system", String(200), nullable=False),
    Column("patient_value", String(64), nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
)
# What a consent covers, for search by actor and category.
consent_terms = Table(
    "consent_terms",
    metadata,
    Column("consent_id", String(36), primary_key=True),
    Column("term", String(20), primary_key=True),  # organization | category
    Column("value", String(64), primary_key=True, index=True),
)

# A person's consents, newest first: the disclosure check's search, built once (building a
# statement cost more than running it, issue 15).
_OF_PATIENT = (
    select(consent_index.c.consent_id)
    .where(consent_index.c.patient_value.in_(bindparam("indexes", expanding=True)))
    .order_by(consent_index.c.last_updated.desc())
)
_OF_PATIENT_IN_SYSTEM = _OF_PATIENT.where(consent_index.c.patient_system == bindparam("system"))


class ConsentIndex(AggregateIndex):
    """Finds consents and blocks by patient, status, organisation, category and update time."""

    name = "consent_index"
    metadata = metadata
    aggregate_class = Consent
    index = consent_index

    def row(self, consent: Consent, event: Any) -> dict[str, Any]:
        return {
            "patient_system": consent.patient["system"],
            "patient_value": self.person_stored(consent.patient),
            "kind": consent.kind,
            "status": consent.status,
            "version": consent.version,
            "last_updated": event.timestamp,
        }

    def apply_related(self, connection: Connection, consent: Consent) -> None:
        # What a consent covers never changes after it is given, but its rows are written as
        # its newest event in a batch left it, which need not be its first.
        consent_id = str(consent.id)
        connection.execute(consent_terms.delete().where(consent_terms.c.consent_id == consent_id))
        organizations = {*consent.organizations, *consent.recipients, *consent.sources}
        terms = [("organization", hsa_id) for hsa_id in organizations]
        terms += [("category", code) for code in consent.categories]
        # A term stored empty (before the domain refused it) is found by no search.
        rows = [
            {"consent_id": consent_id, "term": term, "value": value}
            for term, value in terms
            if value
        ]
        if rows:
            connection.execute(consent_terms.insert(), rows)

    def search(
        self,
        *,
        patient: tuple[str | None, str] | None = None,
        status: Collection[str] | None = None,
        organization: str | None = None,
        category: str | None = None,
        updated_from: datetime | None = None,
        updated_to: datetime | None = None,
        identifier: BusinessIdentifier | None = None,
    ) -> list[UUID]:
        if patient is not None and not (
            status or organization or category or updated_from or updated_to or identifier
        ):
            system, value = patient
            built = _OF_PATIENT_IN_SYSTEM if system else _OF_PATIENT
            # By the person's blind index (docs/decisions/0007), as `identified_by` finds them.
            keys = getattr(self.application, "personal_data", None)
            indexes = searched_persons(keys, system, value)
            return self.ids(built, {"system": system, "indexes": indexes})
        columns = consent_index.c
        query = self.identified_by(
            self.newest_first(), columns.patient_system, columns.patient_value, patient
        )
        if identifier is not None:  # written with the creation event: no catching up
            query = query.where(columns.consent_id.in_(identified_ids("Consent", identifier)))
        if status is not None:
            query = query.where(columns.status.in_(sorted(status)))
        for term, value in (("organization", organization), ("category", category)):
            if value is not None:
                query = self.related(query, consent_terms, term=term, value=value)
        if updated_from is not None:
            query = query.where(columns.last_updated >= updated_from)
        if updated_to is not None:
            query = query.where(columns.last_updated <= updated_to)
        return self.ids(query)
