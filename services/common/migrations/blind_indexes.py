"""The read models keep a person's blind index, never the number (docs/decisions/0007;
migrations sip_0007 and consent_0005), frozen here: a later change is a new migration.

The identifier columns widen to the index's 64 hex digits; the access log gains `sealed` (the
record's sealed personal fields, as its event stores them) and the subscriptions
`person_sealed` (the person filter's identifier, sealed). The projections' rows are deleted
with their tracking rows, so each is rebuilt from position zero on its first catch-up: a
projection is the log applied in order, and the migration has no master key to compute the
indexes with (the rebuild runs in the service, which has). A subscription is no projection:
its person filter is indexed and sealed by the service as it starts
(`Subscriptions.index_person_filters`)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

WIDENED = {
    "plan_index": "subject_value",
    "consent_index": "patient_value",
    "access_log": "patient_value",
    "subscriptions": "person_value",
}


def index_read_models(projections: dict[str, tuple[str, ...]], tables: tuple[str, ...]) -> None:
    """`projections`: each projection's name and its tables (emptied for a rebuild);
    `tables`: every table of this database whose identifier column widens."""
    for name, emptied in projections.items():
        for table in emptied:
            op.execute(sa.text(f"DELETE FROM {table}"))
        for tracking in ("projection_tracking", "projection_failures"):
            op.execute(sa.text(f"DELETE FROM {tracking} WHERE name = :name").bindparams(name=name))
    for table in tables:
        # On SQLite a copy of the table is made (the projections' ones are empty by now).
        with op.batch_alter_table(table) as batch:
            batch.alter_column(WIDENED[table], type_=sa.String(64), existing_type=sa.String(40))
    # Only where missing: a database rolled back to an earlier revision by hand keeps them.
    for table, column in (("access_log", "sealed"), ("subscriptions", "person_sealed")):
        present = sa.inspect(op.get_bind()).get_columns(table) if table in tables else []
        if table in tables and column not in {c["name"] for c in present}:
            op.add_column(table, sa.Column(column, sa.Text()))
