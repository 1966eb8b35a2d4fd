"""The read models keep each person's blind index, never their number (docs/decisions/0007):
the plan index and the access log are rebuilt from the log, the subscriptions' person filters
are indexed by the service as it starts (services/common/migrations/blind_indexes.py).

Revision ID: sip_0007
Revises: sip_0006
"""

from services.common.migrations.blind_indexes import index_read_models

revision = "sip_0007"
down_revision = "sip_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    index_read_models(
        {
            "plan_index": ("plan_consents", "plan_organizations", "plan_index"),
            "access_log": ("access_log",),
        },
        ("plan_index", "access_log", "subscriptions"),
    )


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
