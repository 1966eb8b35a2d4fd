"""The lookup indexes both services' migrations add (sip_0005, consent_0003), frozen here:
a later change is a new migration. Each only where it is missing: the chain's stream index is
also made by the recorder where the library creates its own tables (CREATE_TABLE), and a
database rolled back to an earlier revision by hand keeps its indexes."""

from __future__ import annotations

from alembic import op


def create_lookup_indexes() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index(
            "event_chain_stream_idx",
            "event_chain",
            ["originator_id", "originator_version"],
            if_not_exists=True,
        )
    op.create_index(
        "ix_access_log_entity",
        "access_log",
        ["entity"],
        postgresql_ops={"entity": "text_pattern_ops"},
        if_not_exists=True,
    )
