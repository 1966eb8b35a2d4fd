"""Replicas started at the same instant, as `systemctl enable --now` starts them, after
several `sip migrate` runs at the same instant (one per replica's ExecStartPre): every run
and every replica comes up cleanly on fresh PostgreSQL databases.

SIP_START_ROUNDS sets the number of rounds (2 by default, to stay under a minute; the
issue's figure is 20 of 20)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from services.cli import service_command
from services.common.persistence import maintenance_conninfo
from tests.conftest import POSTGRES_URL
from tests.servers import free_port

ROUNDS = int(os.environ.get("SIP_START_ROUNDS", "2"))
REPLICAS = {"consent": 2, "sip": 2}


def _database_urls(round_id: str) -> dict[str, str]:
    return {
        service: str(make_url(POSTGRES_URL).set(database=f"sip_start_{round_id}_{service}"))
        for service in REPLICAS
    }


def _drop(urls: dict[str, str]) -> None:
    with psycopg.connect(
        maintenance_conninfo(make_url(POSTGRES_URL)), autocommit=True
    ) as connection:
        for url in urls.values():
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(make_url(url).database)
                )
            )


def _at_once(commands: list[tuple[list[str], dict[str, str]]]) -> list[subprocess.Popen]:
    """Starts the processes from threads released by one barrier: the same instant."""
    barrier = threading.Barrier(len(commands))
    started: list[subprocess.Popen] = [None] * len(commands)  # type: ignore[list-item]

    def start(index: int) -> None:
        barrier.wait()
        command, env = commands[index]
        started[index] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(commands))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return started


def _ready(url: str, process: subprocess.Popen, seconds: float = 45) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _one_round(tmp_path: Path, migrations: int) -> list[str]:
    """Problems of one round: none when all came up."""
    round_id = uuid.uuid4().hex[:8]
    urls = _database_urls(round_id)
    data_dir = tmp_path / round_id
    env = {
        **os.environ,
        "SIP_DATA_DIR": str(data_dir),
        "SIP_DATABASE_URL": urls["sip"],
        "CONSENT_DATABASE_URL": urls["consent"],
        "SIP_DEV_ISSUER": "enabled",
    }
    problems: list[str] = []
    try:
        migrate = [sys.executable, "-m", "services.cli", "migrate"]
        for process in _at_once([(migrate, env)] * migrations):
            out = process.communicate(timeout=60)[0].decode()
            if process.returncode != 0:
                problems.append(f"sip migrate exited {process.returncode}: {out[-600:]}")
        ports = {(s, i): free_port() for s, n in REPLICAS.items() for i in range(n)}
        consent_url = f"http://127.0.0.1:{ports['consent', 0]}"
        replicas = _at_once([
            (service_command(f"services.{service}.api", "127.0.0.1", port),
             {**env, "CONSENT_SERVICE_URL": consent_url})
            for (service, _), port in ports.items()
        ])  # fmt: skip
        try:
            for ((service, index), port), process in zip(ports.items(), replicas, strict=True):
                if not _ready(f"http://127.0.0.1:{port}", process):
                    process.kill()
                    out = process.communicate(timeout=10)[0].decode()
                    problems.append(f"{service} replica {index} did not come up: {out[-800:]}")
        finally:
            for process in replicas:
                process.terminate()
            for process in replicas:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    finally:
        _drop(urls)
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
