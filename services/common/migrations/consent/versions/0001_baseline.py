"""The consent service's schema as its code created it at start up to 2026-11-25: event
store, hash chain, projection tracking and failures, access log, consent index. On a database
that has it (created by that code) it creates only what is missing, so it adopts it.

Revision ID: consent_0001
Revises:
"""

from sqlalchemy import Column, DateTime, Integer, String, Table

from services.common.migrations.baseline import (
    create_event_store,
    create_tables,
    shared_read_models,
)

revision = "consent_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_store("consents_events")
    metadata = shared_read_models()
    Table(
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
    Table(
        "consent_terms",
        metadata,
        Column("consent_id", String(36), primary_key=True),
        Column("term", String(20), primary_key=True),
        Column("value", String(64), primary_key=True, index=True),
    )
    create_tables(metadata)


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
