"""The stays' and the messages' read models (services/sip/discharge/projections.py,
services/sip/messages/projections.py, issue 15): a row per stay with the person's blind index
(never the number), its municipality, discharge instant and the legal clock's next due time,
and the organisations and units it concerns; a row per message with the person's blind index
and what it is about, and the organisations and units that sent or received it. New tables;
they start empty and fill from the event log at the first query (the tracking row starts at
zero). The DDL is frozen here, not taken from the code's tables.

Revision ID: sip_0008
Revises: sip_0007
"""

import sqlalchemy as sa
from alembic import op

revision = "sip_0008"
down_revision = "sip_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stay_index",
        sa.Column("stay_id", sa.String(36), primary_key=True),
        sa.Column("person", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("municipality", sa.String(64)),
        sa.Column("discharged_at", sa.DateTime(timezone=True)),
        sa.Column("next_due", sa.DateTime(timezone=True)),
        sa.Column("deviations_pending", sa.Boolean, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_stay_index_person", "stay_index", ["person"])
    op.create_index("ix_stay_index_next_due", "stay_index", ["next_due"])
    op.create_index("ix_stay_index_deviations_pending", "stay_index", ["deviations_pending"])
    op.create_index(
        "ix_stay_index_municipality_discharged", "stay_index", ["municipality", "discharged_at"]
    )
    op.create_table(
        "stay_parties",
        sa.Column("stay_id", sa.String(36), primary_key=True),
        sa.Column("hsa_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_stay_parties_hsa_id", "stay_parties", ["hsa_id"])
    op.create_table(
        "message_index",
        sa.Column("message_id", sa.String(36), primary_key=True),
        sa.Column("person", sa.String(64)),
        sa.Column("about_type", sa.String(40), nullable=False),
        sa.Column("about_id", sa.String(64), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_message_index_person", "message_index", ["person"])
    op.create_index("ix_message_index_about", "message_index", ["about_type", "about_id"])
    op.create_table(
        "message_parties",
        sa.Column("message_id", sa.String(36), primary_key=True),
        sa.Column("hsa_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_message_parties_hsa_id", "message_parties", ["hsa_id"])


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
