"""The personal-data keys (docs/decisions/0007): each person's data keys, one per retention
class, wrapped by the master key kept outside the database; erasing a person deletes their
key. A new table only; it starts empty.

Revision ID: sip_0006
Revises: sip_0005
"""

from services.common.migrations.personal_data_keys import create_personal_data_keys

revision = "sip_0006"
down_revision = "sip_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_personal_data_keys()


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
