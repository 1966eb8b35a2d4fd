"""Subscriptions (services/common/subscriptions/): each record system's subscription with
its cursor into the event log and its delivery state, the notifications numbered for it
(what `$events` answers from), and the time-driven happenings (a follow-up that became
overdue), each noted once. New tables only; they start empty. The DDL is frozen here, not
taken from the code's tables.

Revision ID: sip_0004
Revises: sip_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "sip_0004"
down_revision = "sip_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("owner_subject", sa.String(256), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("person_system", sa.String(200)),
        sa.Column("person_value", sa.String(40)),
        sa.Column("parts", sa.String(200)),
        sa.Column("endpoint", sa.String(2048), nullable=False),
        sa.Column("payload", sa.String(20), nullable=False),
        sa.Column("heartbeat_seconds", sa.Integer),
        sa.Column("timeout_seconds", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("events_count", sa.BigInteger, nullable=False),
        sa.Column("delivered_through", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failing_since", sa.Float),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("heartbeat_due_at", sa.Float),
        sa.Column("last_error", sa.String(500)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.String(40), nullable=False),
    )
    op.create_index("ix_subscriptions_owner", "subscriptions", ["owner"])
    op.create_index("ix_subscriptions_status", "subscriptions", ["status"])
    op.create_table(
        "subscription_notifications",
        sa.Column("subscription_id", sa.String(36), primary_key=True),
        sa.Column("event_number", sa.BigInteger, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("focus_type", sa.String(40), nullable=False),
        sa.Column("focus_id", sa.String(36), nullable=False),
        sa.Column("part", sa.String(40)),
        sa.Column("occurred_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "subscription_timed_happenings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(36), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("noted_at", sa.String(40), nullable=False),
        sa.UniqueConstraint("topic", "aggregate_id", "key", name="uq_timed_happening_once"),
    )


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
