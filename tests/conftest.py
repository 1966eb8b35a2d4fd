"""Fixtures: every API test runs against the embedded SQLite store and against PostgreSQL.

PostgreSQL is expected on 127.0.0.1:5432 (user postgres, trust auth), or wherever
SIP_TEST_POSTGRES_URL points. Where it is missing the PostgreSQL tests are skipped with a
clear reason, except under CI=true, where a missing PostgreSQL fails the run. The tests keep
their databases there (`sip_tests_<n>_sip`, `sip_tests_<n>_consent`) and empty them for reuse.

The services are started once per test module and backend (`system`); each test makes its
own people and plans. A test whose assertions cover everything stored uses `fresh_system`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from services.common.auth.tokens import DevIssuer, default_scopes
from services.common.migrations.runner import migrate_service
from services.common.persistence import maintenance_conninfo
from services.common.settings import ServiceSettings
from tests.fhir_data import REGION
from tests.servers import ask_to_stop, free_port, http_client, serve, wait_until

POSTGRES_URL = os.environ.get("SIP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/")
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _postgres_admin_conninfo() -> str:
    return maintenance_conninfo(make_url(POSTGRES_URL), connect_timeout=3)


def _postgres_problem() -> str | None:
    try:
        with psycopg.connect(_postgres_admin_conninfo()) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {error}".strip()
    return None


class PostgresPool:
    """Pairs of databases, one per service, that test runs reuse: emptied when a test takes
    a pair, never dropped, because DROP DATABASE forces a checkpoint of the whole server
    (seconds each when the server is busy). A process claims a pair with an advisory lock
    held until it ends, so concurrent runs (pytest-xdist workers, other checkouts) never
    share one."""

    LOCKS = 0x51B  # the advisory-lock key space of these pairs

    def __init__(self) -> None:
        self._admin = psycopg.connect(_postgres_admin_conninfo(), autocommit=True)
        self._claimed: set[int] = set()
        self._free: list[int] = []

    def take(self) -> tuple[int, dict[str, str | None]]:
        pair = self._free.pop() if self._free else self._claim()
        urls: dict[str, str | None] = {}
        for service in ("sip", "consent"):
            name = f"sip_tests_{pair}_{service}"
            self._empty(name)
            urls[service] = str(make_url(POSTGRES_URL).set(database=name))
        return pair, urls

    def give_back(self, pair: int) -> None:
        self._free.append(pair)

    def close(self) -> None:
        self._admin.close()  # and with it the locks

    def _claim(self) -> int:
        pair = 0
        while (
            pair in self._claimed
            or not self._admin.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (self.LOCKS, pair)
            ).fetchone()[0]
        ):
            pair += 1
        self._claimed.add(pair)
        return pair

    def _empty(self, name: str) -> None:
        exists = self._admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not exists.fetchone():
            self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return
        # Connections a stopped or killed service left behind would hold up the drop.
        self._admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conninfo = psycopg.conninfo.make_conninfo(_postgres_admin_conninfo(), dbname=name)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
            connection.execute("CREATE SCHEMA public")


@pytest.fixture(scope="session")
def postgres_pool() -> Iterator[PostgresPool]:
    problem = _postgres_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI needs PostgreSQL for the PostgreSQL suite")
        pytest.skip(f"{problem}; start PostgreSQL or set SIP_TEST_POSTGRES_URL")
    pool = PostgresPool()
    yield pool
    pool.close()


@dataclass
class Backend:
    name: str
    data_dir: Path
    database_urls: dict[str, str | None]

    def settings(self, service: str, consent_service_url: str = UNREACHABLE) -> ServiceSettings:
        return ServiceSettings(
            data_dir=self.data_dir,
            database_url=self.database_urls[service],
            consent_service_url=consent_service_url,
            # Production's 2 s is too short for a 2-core machine running the suite in parallel
            # with the topology test's replicas: a `$check` waiting for SQLite's write lock
            # (it logs the decision) once took longer. No test relies on the timeout: an
            # unreachable consent service refuses the connection at once.
            consent_timeout_seconds=10.0,
            dev_issuer=True,
        )

    @property
    def issuer(self) -> DevIssuer:
        return DevIssuer(self.data_dir)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Which event store a test runs on; every API test runs on both."""
    return request.param


def migrated(backend: Backend) -> Backend:
    """The backend after `sip migrate`, as an operator runs it before starting replicas."""
    for service, url in backend.database_urls.items():
        migrate_service(service, url, backend.data_dir)
    return backend


@contextmanager
def new_backend(kind: str, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Storage no other test uses meanwhile: a new data folder and, on PostgreSQL, a pair of
    emptied databases."""
    if kind == "sqlite":
        yield migrated(Backend("sqlite", data_dir, {"sip": None, "consent": None}))
        return
    pool: PostgresPool = request.getfixturevalue("postgres_pool")
    pair, urls = pool.take()
    try:
        yield migrated(Backend("postgres", data_dir, urls))
    finally:
        pool.give_back(pair)


@pytest.fixture
def backend(backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Fresh storage for this test alone."""
    with new_backend(backend_kind, tmp_path / "data", request) as backend:
        yield backend


@pytest.fixture(scope="module")
def module_backend(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """Storage the tests of one module share; each test makes its own people and plans."""
    with new_backend(backend_kind, tmp_path_factory.mktemp("data"), request) as backend:
        yield backend


@dataclass
class Caller:
    """One user or system: an HTTP client per service carrying its bearer token."""

    sip: httpx.Client
    consent: httpx.Client


class System:
    """Both services over real HTTP. `sip` and `consent` call as a coordinator at the region;
    `as_caller(...)` gives clients for anyone else."""

    def __init__(self, sip_url: str, consent_url: str, issuer: DevIssuer) -> None:
        self.sip_url, self.consent_url, self.issuer = sip_url, consent_url, issuer
        self._clients: list[httpx.Client] = []
        coordinator = self.as_caller()
        self.sip, self.consent = coordinator.sip, coordinator.consent
        self.without_token = Caller(self.client(sip_url), self.client(consent_url))

    def token(
        self, role: str = "coordinator", organization: str | None = REGION, **claims: Any
    ) -> str:
        claims.setdefault("scopes", default_scopes(role))
        return self.issuer.mint(
            subject=claims.pop("subject", f"{role}-1"),
            role=role,
            organization=organization,
            **claims,
        )

    def as_caller(
        self, role: str = "coordinator", organization: str | None = REGION, **claims: Any
    ) -> Caller:
        headers = {"Authorization": f"Bearer {self.token(role, organization, **claims)}"}
        return Caller(self.client(self.sip_url, headers), self.client(self.consent_url, headers))

    def settle(self) -> None:
        """Waits until the SIP service has acted on everything in the consent service's log
        (it notes withdrawals on plans as it follows that log), so that nothing more is
        written behind the test's back."""
        consent_head = self.consent_app.state.registry.recorder.max_notification_id()
        follower = self.sip_app.state.consent_feed
        assert wait_until(lambda: follower.position() >= consent_head), "the follower lags"

    def client(self, base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
        client = http_client(base_url, headers=headers or {})
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@contextmanager
def running_system(backend: Backend, **settings: Any) -> Iterator[System]:
    """Both services on the backend's storage, the consent service first (the SIP service
    follows its log from the start); `settings` changes both services' (e.g.
    `whole_log_readers`)."""
    from services.consent.api import create_app as consent_app
    from services.sip.api import create_app as sip_app

    consent = consent_app(replace(backend.settings("consent"), **settings))
    with serve(consent) as consent_url:
        sip = sip_app(replace(backend.settings("sip", consent_service_url=consent_url), **settings))
        with serve(sip) as sip_url:
            system = System(sip_url, consent_url, backend.issuer)
            system.sip_app, system.consent_app, system.backend = sip, consent, backend
            try:
                yield system
            finally:
                system.close()
                ask_to_stop(sip_url, consent_url)


@pytest.fixture(scope="module")
def system(module_backend: Backend) -> Iterator[System]:
    """Both services, started once for the module's tests on each backend. Tests keep out of
    each other's way by making their own data (a new personnummer each, new plans); a test
    whose assertions cover the whole store uses `fresh_system`."""
    with running_system(module_backend) as system:
        yield system


@pytest.fixture
def fresh_system(backend: Backend) -> Iterator[System]:
    """Both services on storage no other test has touched: for tests that tamper with the
    stored log, count or replay all of it, or read type-level history of everything."""
    with running_system(backend) as system:
        yield system


@pytest.fixture
def sip_without_consent_service(backend: Backend) -> Iterator[httpx.Client]:
    """The SIP service with its consent service down, and a coordinator's client."""
    from services.sip.api import create_app as sip_app

    down = f"http://127.0.0.1:{free_port()}"
    with serve(sip_app(backend.settings("sip", consent_service_url=down))) as url:
        system = System(url, down, backend.issuer)
        yield system.sip
        system.close()


@pytest.hookimpl(trylast=True)  # after pytest has grouped the tests by fixture parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that start `sip up` processes take longest: each worker starts with its
    share of them. pytest-xdist's worksteal hands the N workers the collection in N
    consecutive parts (each as long as what is left over the workers left), so each part
    begins with every Nth of those tests and goes on with the others in pytest's order."""
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    slow = [item for item in items if item.get_closest_marker("processes")]
    others = iter([item for item in items if not item.get_closest_marker("processes")])
    ordered: list[pytest.Item] = []
    for worker in range(workers):
        share = slow[worker::workers]
        part = (len(items) - len(ordered)) // (workers - worker)
        ordered += share + [next(others) for _ in range(max(0, part - len(share)))]
    items[:] = ordered + list(others)
