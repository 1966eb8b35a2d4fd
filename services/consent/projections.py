"""Read models of the consent service, rebuilt from its event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, select
from sqlalchemy.engine import Connection

from services.common.projection import Projection
from services.consent.domain import Consent

metadata = MetaData()
consent_index = Table(
    "consent_index",
    metadata,
    Column("consent_id", String(36), primary_key=True),
    Column("patient_system", String(200), nullable=False),
    Column("patient_value", String(40), nullable=False, index=True),
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


class ConsentIndex(Projection):
    """Finds consents and blocks by patient, status, organisation, category and update time."""

    name = "consent_index"
    metadata = metadata
    aggregate_class = Consent

    def apply(self, connection: Connection, event: Any) -> None:
        consent: Consent = self.application.repository.get(
            event.originator_id, version=event.originator_version
        )
        consent_id = str(consent.id)
        row = {
            "patient_system": consent.patient["system"],
            "patient_value": consent.patient["value"],
            "kind": consent.kind,
            "status": consent.status,
            "version": consent.version,
            "last_updated": event.timestamp,
        }
        if consent.version == 1:
            connection.execute(consent_index.insert().values(consent_id=consent_id, **row))
            organizations = {*consent.organizations, *consent.recipients, *consent.sources}
            connection.execute(
                consent_terms.insert(),
                [
                    {"consent_id": consent_id, "term": "organization", "value": hsa_id}
                    for hsa_id in organizations
                ]
                + [
                    {"consent_id": consent_id, "term": "category", "value": code}
                    for code in consent.categories
                ],
            )
        else:
            connection.execute(
                consent_index.update().where(consent_index.c.consent_id == consent_id).values(**row)
            )

    def search(
        self,
        *,
        patient: tuple[str | None, str] | None = None,
        status: str | None = None,
        organization: str | None = None,
        category: str | None = None,
        updated_from: datetime | None = None,
        updated_to: datetime | None = None,
    ) -> list[UUID]:
        self.catch_up()
        columns = consent_index.c
        query = select(columns.consent_id).order_by(columns.last_updated.desc())
        if patient is not None:
            system, value = patient
            query = query.where(columns.patient_value == value)
            if system:
                query = query.where(columns.patient_system == system)
        if status is not None:
            query = query.where(columns.status == status)
        for term, value in (("organization", organization), ("category", category)):
            if value is not None:
                query = query.where(
                    columns.consent_id.in_(
                        select(consent_terms.c.consent_id).where(
                            consent_terms.c.term == term, consent_terms.c.value == value
                        )
                    )
                )
        if updated_from is not None:
            query = query.where(columns.last_updated >= updated_from)
        if updated_to is not None:
            query = query.where(columns.last_updated <= updated_to)
        with self.reader.connect() as connection:
            return [UUID(row) for row in connection.execute(query).scalars()]
