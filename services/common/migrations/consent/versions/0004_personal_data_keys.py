"""The personal-data keys (docs/decisions/0007): each person's data keys, one per retention
class, wrapped by the master key kept outside the database; erasing a person deletes their
key. A new table only; it starts empty.

Revision ID: consent_0004
Revises: consent_0003
"""

from services.common.migrations.personal_data_keys import create_personal_data_keys

revision = "consent_0004"
down_revision = "consent_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_personal_data_keys()


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
