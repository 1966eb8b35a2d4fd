"""Indexes the hot lookups need, so a request costs the same however large the store grows
(issue 15; tests/test_query_plans.py checks every hot query's plan):

- the hash chain's stream head (`chain.py`: the newest link of one aggregate, read for every
  change) had no index on SQLite and scanned the whole chain; PostgreSQL has had it from the
  baseline (`<events>_chain_stream_idx`);
- the access log's `entity`, searched by prefix (a resource's versions, for Provenance): on
  PostgreSQL with `text_pattern_ops`, so `LIKE 'prefix%'` uses it whatever the database's
  collation; on SQLite the search adds the equivalent range, which a plain index serves.

Revision ID: sip_0005
Revises: sip_0004
"""

from services.common.migrations.lookup_indexes import create_lookup_indexes

revision = "sip_0005"
down_revision = "sip_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_lookup_indexes()


def downgrade() -> None:
    raise NotImplementedError("the event log is append-only: restore a backup instead")
