"""Replicas started at the same instant, as `systemctl enable --now` starts them, after
several `sip migrate` runs at the same instant (one per replica's ExecStartPre): every run
and every replica comes up cleanly on fresh PostgreSQL databases.

SIP_START_ROUNDS sets the number of rounds (2 by default, to stay under a minute; the
issue's figure is 20 of 20)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.replicas import (
    Replica,
    database_urls,
    drop_databases,
    environment,
    migrate_at_once,
    start_together,
)
from tests.servers import free_port

ROUNDS = int(os.environ.get("SIP_START_ROUNDS", "2"))
REPLICAS = {"consent": 2, "sip": 2}


def _one_round(tmp_path: Path, migrations: int) -> list[str]:
    """Problems of one round: none when all came up."""
    round_id = uuid.uuid4().hex[:8]
    urls = database_urls(f"sip_start_{round_id}")
    data_dir = tmp_path / round_id
    data_dir.mkdir()
    env = environment(data_dir, urls)
    replicas: list[Replica] = []
    try:
        problems = migrate_at_once(env, migrations)
        ports = {(s, i): free_port() for s, n in REPLICAS.items() for i in range(n)}
        consent_url = f"http://127.0.0.1:{ports['consent', 0]}"
        replicas = [
            Replica(service, port, {**env, "CONSENT_SERVICE_URL": consent_url},
                    data_dir / f"{service}-{port}.log")
            for (service, _), port in ports.items()
        ]  # fmt: skip
        problems += start_together(replicas)
    finally:
        for replica in replicas:
            replica.stop()
        drop_databases(urls)
    return problems


@pytest.mark.postgres
@pytest.mark.processes
def test_four_replicas_started_together_after_concurrent_migrations_all_come_up(
    postgres_pool, tmp_path
):
    failed = {}
    for number in range(ROUNDS):
        problems = _one_round(tmp_path, migrations=4)
        if problems:
            failed[number] = problems
    assert not failed, f"{len(failed)} of {ROUNDS} rounds failed: {failed}"
