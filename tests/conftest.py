"""Fixtures: every API test runs against the embedded SQLite store and against PostgreSQL.

PostgreSQL is expected on 127.0.0.1:5432 (user postgres, trust auth), or wherever
SIP_TEST_POSTGRES_URL points. Where it is missing the PostgreSQL tests are skipped with a
clear reason, except under CI=true, where a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from services.common.auth.tokens import DevIssuer, default_scopes
from services.common.persistence import maintenance_conninfo
from services.common.settings import ServiceSettings
from tests.fhir_data import REGION
from tests.servers import free_port, serve, wait_until

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


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[list[str]]:
    """Names of the databases the tests created, dropped at the end of the session."""
    problem = _postgres_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI needs PostgreSQL for the PostgreSQL suite")
        pytest.skip(f"{problem}; start PostgreSQL or set SIP_TEST_POSTGRES_URL")
    created: list[str] = []
    yield created
    with psycopg.connect(_postgres_admin_conninfo(), autocommit=True) as connection:
        for name in created:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


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
            consent_timeout_seconds=2.0,
            dev_issuer=True,
        )

    @property
    def issuer(self) -> DevIssuer:
        return DevIssuer(self.data_dir)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None})
    created = request.getfixturevalue("postgres_databases")
    urls: dict[str, str | None] = {}
    for service in ("sip", "consent"):
        name = f"test_{service}_{uuid.uuid4().hex[:12]}"
        created.append(name)
        urls[service] = str(make_url(POSTGRES_URL).set(database=name))
    return Backend("postgres", tmp_path / "data", urls)


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
        client = httpx.Client(base_url=base_url, timeout=10, headers=headers or {})
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def system(backend: Backend) -> Iterator[System]:
    from services.consent.api import create_app as consent_app
    from services.sip.api import create_app as sip_app

    consent = consent_app(backend.settings("consent"))
    with serve(consent) as consent_url:
        sip = sip_app(backend.settings("sip", consent_service_url=consent_url))
        with serve(sip) as sip_url:
            system = System(sip_url, consent_url, backend.issuer)
            system.sip_app, system.consent_app = sip, consent
            yield system
            system.close()


@pytest.fixture
def sip_without_consent_service(backend: Backend) -> Iterator[httpx.Client]:
    """The SIP service with its consent service down, and a coordinator's client."""
    from services.sip.api import create_app as sip_app

    down = f"http://127.0.0.1:{free_port()}"
    with serve(sip_app(backend.settings("sip", consent_service_url=down))) as url:
        system = System(url, down, backend.issuer)
        yield system.sip
        system.close()
