"""The disclosure check, `POST /fhir/Consent/$check`, over real HTTP: latency percentiles with
few and with many consents stored, SQLite and PostgreSQL side by side in one run.

    python bench/consent_check.py [--consents 10000] [--checks 2000] [--skip-postgres]

Each configuration seeds its consents straight through the application (the consent events
as `POST /fhir/Consent` would save them), starts the consent service as its own process the
way `sip up` does, and sends `$check` requests one at a time from a keep-alive client, for
persons picked at random: half of them have a consent that covers the disclosure (permit),
the others ask for a category it does not cover (deny). Every check is recorded in the
access log before it is answered, as in production, so each one includes a write.
The goal the issue sets: p99 under 5 ms with 10,000 consents stored.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from postgres_db import POSTGRES, on_server, postgres_reachable

from contracts.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM, with_check_digit
from services.cli import service_command, wait_ready
from services.common.access_log import WriteContext, writing
from services.common.auth.tokens import DevIssuer
from services.common.migrations.runner import migrate_service
from services.ops.offline import open_service

REGION, MUNICIPALITY = "SE2321000032-R1", "SE2120000357-K1"
RECORDER = {"subject": "bench", "role": "coordinator", "organization": REGION, "unit": None}
GOAL_P99_MS = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def personnummer(number: int) -> str:
    born = datetime(1940, 1, 1) + timedelta(days=number // 900)
    return with_check_digit(f"{born:%Y%m%d}{number % 900 + 100:03d}")


def seed(data_dir: Path, database_url: str | None, consents: int) -> None:
    now = datetime.now(UTC)
    migrate_service("consent", database_url, data_dir)
    with open_service("consent", data_dir, database_url) as service:
        for number in range(consents):
            patient = {"system": PERSONNUMMER_SYSTEM, "value": personnummer(number)}
            with writing(WriteContext(RECORDER, "create", "Consent", now)):
                service.application.give(
                    patient=patient, kind="permit", scope="patient-privacy",
                    categories=["sip-plan"], performer=[{"identifier": patient}],
                    givers=[{"role": "person"}], form="written",
                    organizations=[REGION, MUNICIPALITY], recipients=[], sources=[],
                    exclusions=[], period_start=now - timedelta(days=1), period_end=None,
                    given_at=now, recorded_by=RECORDER,
                )  # fmt: skip
        for projection in service.projections():
            projection.catch_up()


def check_body(person: str, category: str) -> dict:
    def identifier(system: str, value: str) -> dict:
        return {"valueIdentifier": {"system": system, "value": value}}

    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", **identifier(PERSONNUMMER_SYSTEM, person)},
            {"name": "actor", **identifier(HSA_ID_SYSTEM, MUNICIPALITY)},
            {"name": "source", **identifier(HSA_ID_SYSTEM, REGION)},
            {"name": "category", "valueCode": category},
        ],
    }


def measure(data_dir: Path, database_url: str | None, consents: int, checks: int) -> dict:
    seed(data_dir, database_url, consents)
    port = free_port()
    env = {**os.environ, "SIP_DATA_DIR": str(data_dir), "SIP_DEV_ISSUER": "enabled"}
    env.pop("CONSENT_DATABASE_URL", None)
    if database_url:
        env["CONSENT_DATABASE_URL"] = database_url
    process = subprocess.Popen(
        [*service_command("services.consent.api", "127.0.0.1", port), "--log-level", "warning"],
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_ready(url, process):
            raise RuntimeError("the consent service did not start")
        token = DevIssuer(data_dir).mint(
            subject="bench", role="integration", organization=MUNICIPALITY, unit=None,
            patient=None, scopes=("system/Consent.rs",), lifetime_seconds=3600,
        )  # fmt: skip
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        chooser = random.Random(1)
        latencies, decisions = [], {"permit": 0, "deny": 0}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            for attempt in range(checks + checks // 10):  # the first tenth warms up
                person = personnummer(chooser.randrange(consents))
                category = "sip-plan" if chooser.random() < 0.5 else "health-care"
                started = time.perf_counter()
                response = client.post("/fhir/Consent/$check", json=check_body(person, category))
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                decision = response.json()["parameter"][0]["valueCode"]
                expected = "permit" if category == "sip-plan" else "deny"
                if decision != expected:
                    raise AssertionError(f"{person} {category}: {decision}, not {expected}")
                if attempt >= checks // 10:
                    latencies.append(elapsed * 1000)
                    decisions[decision] += 1
        quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
        return {"p50": quantiles[49], "p90": quantiles[89], "p99": quantiles[98], **decisions}
    finally:
        process.terminate()
        process.wait(timeout=10)


def run(label: str, database_url: str | None, consents: int, checks: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        result = measure(Path(folder), database_url, consents, checks)
    print(
        f"{label:>9} {consents:>9,} {result['p50']:>8.2f} {result['p90']:>8.2f} "
        f"{result['p99']:>8.2f}   {result['permit']}/{result['deny']}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consents", type=int, default=10_000)
    parser.add_argument("--few", type=int, default=100, help="the small store compared with")
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--skip-postgres", action="store_true")
    arguments = parser.parse_args()
    print(f"{'backend':>9} {'consents':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}   permit/deny")
    results: dict[tuple[str, int], dict] = {}
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if not arguments.skip_postgres and postgres_reachable():
        backends.append(("postgres", POSTGRES))
    for label, server in backends:
        for consents in (arguments.few, arguments.consents):
            with on_server("bench_check", server, create=False) as database_url:
                results[label, consents] = run(label, database_url, consents, arguments.checks)
    for label, _ in backends:
        many = results[label, arguments.consents]["p99"]
        few = results[label, arguments.few]["p99"]
        verdict = "meets" if many < GOAL_P99_MS else "misses"
        print(
            f"{label}: p99 {arguments.consents:,}/{arguments.few:,} consents = {many / few:.2f}x; "
            f"p99 / {GOAL_P99_MS:.0f} ms goal = {many / GOAL_P99_MS:.2f} ({verdict} it)"
        )
    if len(backends) == 2:
        ratio = (
            results["postgres", arguments.consents]["p99"]
            / results["sqlite", arguments.consents]["p99"]
        )
        print(f"postgres/sqlite p99 at {arguments.consents:,} consents: {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
