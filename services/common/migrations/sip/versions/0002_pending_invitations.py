"""The plan index finds the plans whose invitation an organisation has not accepted yet
(`CarePlan?invitation-pending=`): rows of role `invitation-pending` in `plan_organizations`,
which the plan index writes from this revision on. No table changes; this gives the plans the
index holds already the rows the code would have written for them.

Before this revision no invitation could be accepted, so in every open plan each organisation
taking part (a `member` row) is pending, except the one that started the plan, which takes part
from the start. The rows are those of the plans as far as the index has applied the log; the
events after that are applied by the new code.

Revision ID: sip_0002
Revises: sip_0001
"""

from alembic import op

revision = "sip_0002"
down_revision = "sip_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO plan_organizations (plan_id, hsa_id, role) "
        "SELECT taking_part.plan_id, taking_part.hsa_id, 'invitation-pending' "
        "FROM plan_organizations taking_part "
        "JOIN plan_index listed ON listed.plan_id = taking_part.plan_id "
        "WHERE taking_part.role = 'member' "
        "AND taking_part.hsa_id <> listed.starting_organization "
        "AND listed.status NOT IN ('completed', 'revoked') "  # open: not closed
        "AND NOT EXISTS (SELECT 1 FROM plan_organizations pending "
        "WHERE pending.plan_id = taking_part.plan_id AND pending.hsa_id = taking_part.hsa_id "
        "AND pending.role = 'invitation-pending')"
    )


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
