"""The read models keep each person's blind index, never their number (docs/decisions/0007):
the consent index and the access log are rebuilt from the log
(services/common/migrations/blind_indexes.py).

Revision ID: consent_0005
Revises: consent_0004
"""

from services.common.migrations.blind_indexes import index_read_models

revision = "consent_0005"
down_revision = "consent_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    index_read_models(
        {"consent_index": ("consent_terms", "consent_index"), "access_log": ("access_log",)},
        ("consent_index", "access_log"),
    )


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
