"""Business identifiers (`identifier` of a created resource, see
services/common/business_identifiers.py):
one row per identifier a creating organisation gave a resource, written by the event store's
recorder in the same transaction as the creation event; its primary key is what makes a
retried create find the first one. Resources created before this revision have none, so the
table starts empty. The DDL is frozen here, not taken from the code's table.

Revision ID: consent_0002
Revises: consent_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "consent_0002"
down_revision = "consent_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_identifiers",
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("organization", sa.String(200), primary_key=True),
        sa.Column("system", sa.String(255), primary_key=True),
        sa.Column("value", sa.String(128), primary_key=True),
        sa.Column("resource_id", sa.String(36), nullable=False),
    )
    op.create_index("ix_business_identifiers_resource_id", "business_identifiers", ["resource_id"])
    op.create_index(  # searches by identifier, whoever created the resource
        "ix_business_identifiers_system_value", "business_identifiers", ["system", "value"]
    )


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
