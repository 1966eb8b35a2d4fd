"""How many personal-data keys were ever erased, in one row counted up by each erasure's
transaction (docs/decisions/0007): a running replica learns of an erasure made elsewhere
(`sip retention run`) by reading that row, where counting the erased keys read a table that
grows with the registry (issue 15). A new table with one row, counted from the keys erased.

Revision ID: sip_0009
Revises: sip_0008
"""

from services.common.migrations.personal_data_keys import create_erasure_counter

revision = "sip_0009"
down_revision = "sip_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_erasure_counter()


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
