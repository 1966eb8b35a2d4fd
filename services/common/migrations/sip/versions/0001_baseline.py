"""The SIP service's schema as its code created it at start up to 2026-11-25: event store,
hash chain, projection tracking and failures, access log, plan index. On a database that has
it (created by that code) it creates only what is missing, so it adopts it.

Revision ID: sip_0001
Revises:
"""

from sqlalchemy import Column, Date, DateTime, Integer, String, Table

from services.common.migrations.baseline import (
    create_event_store,
    create_tables,
    shared_read_models,
)

revision = "sip_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_store("sipplans_events")
    metadata = shared_read_models()
    Table(
        "plan_index",
        metadata,
        Column("plan_id", String(36), primary_key=True),
        Column("subject_system", String(200), nullable=False),
        Column("subject_value", String(40), nullable=False, index=True),
        Column("starting_organization", String(64), nullable=False),
        Column("status", String(20), nullable=False, index=True),
        Column("version", Integer, nullable=False),
        Column("last_updated", DateTime(timezone=True), nullable=False),
        Column("period_start", DateTime(timezone=True)),
        Column("period_end", DateTime(timezone=True)),
        Column("next_follow_up", Date, index=True),
        Column("overall_responsible", String(64)),
    )
    Table(
        "plan_organizations",
        metadata,
        Column("plan_id", String(36), primary_key=True),
        Column("hsa_id", String(64), primary_key=True, index=True),
        Column("role", String(20), primary_key=True),
    )
    Table(
        "plan_consents",
        metadata,
        Column("plan_id", String(36), primary_key=True),
        Column("consent_id", String(36), primary_key=True, index=True),
    )
    create_tables(metadata)


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
