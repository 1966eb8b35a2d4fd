"""Replicas of the services as real processes on PostgreSQL, started as an operator starts
them: on databases of their own, after `sip migrate` runs at the same instant (one per
replica's ExecStartPre), all at the same instant (`systemctl enable --now`)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy import make_url

from services.cli import service_command
from services.common.persistence import maintenance_conninfo
from tests.conftest import POSTGRES_URL

SERVICES = ("sip", "consent")


def database_urls(name: str) -> dict[str, str]:
    """URLs of a pair of databases no other test uses (`sip migrate` creates them)."""
    return {
        service: str(make_url(POSTGRES_URL).set(database=f"{name}_{service}"))
        for service in SERVICES
    }


def drop_databases(urls: dict[str, str]) -> None:
    with psycopg.connect(
        maintenance_conninfo(make_url(POSTGRES_URL)), autocommit=True
    ) as connection:
        for url in urls.values():
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(make_url(url).database)
                )
            )


def environment(data_dir: Path, urls: dict[str, str]) -> dict[str, str]:
    """What every replica and `sip migrate` read: one data (and key) folder, the databases,
    the development issuer (the tests mint their tokens with its key)."""
    return {
        **os.environ,
        "SIP_DATA_DIR": str(data_dir),
        "SIP_DATABASE_URL": urls["sip"],
        "CONSENT_DATABASE_URL": urls["consent"],
        "SIP_DEV_ISSUER": "enabled",
    }


def at_once(starts: list[Callable[[], object]]) -> list:
    """Calls each from a thread of its own, all released by one barrier: the same instant."""
    barrier = threading.Barrier(len(starts))
    results: list = [None] * len(starts)

    def call(index: int) -> None:
        barrier.wait()
        results[index] = starts[index]()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(starts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def migrate_at_once(env: dict[str, str], runs: int) -> list[str]:
    """Runs `sip migrate` `runs` times at the same instant; the problems (none when every run
    exited 0)."""
    command = [sys.executable, "-m", "services.cli", "migrate"]

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    problems = []
    for process in at_once([start] * runs):
        out = process.communicate(timeout=60)[0].decode()
        if process.returncode != 0:
            problems.append(f"sip migrate exited {process.returncode}: {out[-600:]}")
    return problems


@dataclass
class Replica:
    """One replica of a service on a loopback port, its output in a log file (a pipe nobody
    reads would stall a replica that logs much)."""

    service: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None
    workers: int = 1  # server processes on its port (`--workers`)
    last_readiness: str = ""
    readiness_seen: list[str] = field(default_factory=list)  # each new answer, when

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                service_command(
                    f"services.{self.service}.api", "127.0.0.1", self.port, self.workers
                ),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def ready(self, seconds: float = 45) -> bool:
        """Whether `/readyz` answered 200 before the process ended or time ran out."""
        started = time.monotonic()
        while time.monotonic() < started + seconds and self.process.poll() is None:
            try:
                # A replica under load (restarted while clients write) answers slowly.
                answer = httpx.get(f"{self.url}/readyz", timeout=5)
                if answer.status_code == 200:
                    return True
                seen = f"{answer.status_code} {answer.text}"
            except httpx.HTTPError as error:
                seen = repr(error)
            if seen != self.last_readiness:
                self.last_readiness = seen
                self.readiness_seen.append(f"{time.monotonic() - started:.1f} s: {seen}")
            time.sleep(0.1)
        return False

    def output(self, characters: int = 800) -> str:
        """The end of its log, and its last answer to `/readyz`."""
        tail = self.log.read_text(errors="replace")[-characters:]
        return f"{tail}\n/readyz answered: {self.readiness_seen}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_together(replicas: list[Replica]) -> list[str]:
    """Starts every replica at the same instant; the problems of those that did not come up
    (none when every one is ready)."""
    at_once([replica.start for replica in replicas])
    problems = []
    for replica in replicas:
        if not replica.ready():
            replica.stop()
            problems.append(
                f"{replica.service} replica on {replica.port} did not come up: {replica.output()}"
            )
    return problems
