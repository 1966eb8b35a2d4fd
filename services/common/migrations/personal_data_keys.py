"""The personal-data keys table both services' migrations add (sip_0006, consent_0004) and its
erasure counter (sip_0009, consent_0006), frozen
here: a later change is a new migration (services/common/personal_data/keys.py,
docs/decisions/0007). It starts empty: keys are made as personal data is written."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def create_personal_data_keys() -> None:
    op.create_table(
        "personal_data_keys",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("person_index", sa.String(64)),
        sa.Column("retention_class", sa.String(40)),
        sa.Column("wrapped_key", sa.LargeBinary),
        sa.Column("master_key_id", sa.String(16)),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("erased_at", sa.String(40)),
        sa.Column("erased_rule", sa.String(200)),
        sa.UniqueConstraint("person_index", "retention_class", name="uq_personal_data_key_person"),
    )


def create_erasure_counter() -> None:
    """sip_0009, consent_0006: how many keys were ever erased, in one row, so a replica
    learns of an erasure made elsewhere by reading one row (issue 15), counted from the keys
    already erased."""
    table = op.create_table(
        "personal_data_erasures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("erased", sa.Integer, nullable=False),
    )
    erased = op.get_bind().execute(
        sa.text("SELECT count(*) FROM personal_data_keys WHERE erased_at IS NOT NULL")
    )
    op.bulk_insert(table, [{"id": 1, "erased": erased.scalar_one()}])
