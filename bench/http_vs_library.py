"""Writes through the HTTP API against the bare eventsourcing library's saves of the same
events, 1 and 4 clients, SQLite and PostgreSQL, side by side in one run.

    python bench/http_vs_library.py [--seconds 8] [--workers CORES] [--skip-postgres]

The workload, for both sides: half the commands create a plan, half record a need on one of
the client's plans (in turn). Through HTTP each is a request to the SIP service, started as
`sip up` starts it (its own process, or `--workers` processes on one port), with everything a
request pays: the bearer token, the access check and disclosure, the access log record in
the write's transaction, the hash chain. The library side saves the domain's own events
(`services.sip.domain.Plan`: `Started`, `NeedRecorded`) with a plain `Application`, reading
the plan before changing it as a command does, one thread per client: no token, no access
log, no chain, no HTTP. Both sides use the library's recorder for the database (WAL,
synchronous FULL on SQLite; PostgreSQL's defaults) on fresh storage of the same server (a
file in one folder; a database of one PostgreSQL), for `--seconds` each after a warm-up,
taken in turns (`--rounds` slices each) so that the shared machine's changing load falls on
every side alike.

The goal (issue 15): HTTP at least 0.5x the library with 1 client, at least 1.0x with 4. The
4-client HTTP figure is measured with one worker and with `--workers`; the verdict takes the
better one and says which.

A third side, the floor (`bench/floor_app.py`), serves the library's work from a bare FastAPI
app in uvicorn, one worker: its ratio ("floor ratio") is the most the services could reach on
this stack if everything they add to a request (token, disclosure, access log, chain, FHIR
parsing and answers) cost nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from eventsourcing.application import Application
from postgres_db import POSTGRES, on_server, postgres_reachable
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fhir_data

from services.cli import service_command, wait_ready
from services.common.auth.tokens import DevIssuer, default_scopes
from services.common.migrations.runner import migrate_service
from services.common.persistence import eventsourcing_postgres_env
from services.sip.domain import Plan
from tests.fhir_data import FHIR_JSON, REGION, care_plan, new_personnummer, parameters
from tests.servers import free_port

GOAL_ONE, GOAL_FOUR = 0.5, 1.0
ACTOR = {"subject": "bench", "role": "coordinator", "organization": REGION, "unit": None}


Command = Callable[[int, int], None]


def warm_up(clients: int, command: Command) -> None:
    for client in range(clients):
        for number in range(5):
            command(client, -1 - number)


def drive(clients: int, seconds: float, command: Command) -> tuple[int, float]:
    """Runs `command(client, number)` from `clients` threads, each in a loop, for `seconds`:
    (commands done, seconds taken)."""
    counts = [0] * clients
    failures: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def loop(client: int) -> None:
        barrier.wait()
        try:
            while time.monotonic() < deadline[0]:
                command(client, counts[client])
                counts[client] += 1
        except BaseException as error:  # reported below: it ends the run
            failures.append(error)

    threads = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    started = time.monotonic()
    barrier.wait()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return sum(counts), time.monotonic() - started


# --- Through HTTP -------------------------------------------------------------------------


@contextmanager
def running_services(data_dir: Path, urls: dict[str, str | None], workers: int) -> Iterator[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SIP_DATA_DIR": str(data_dir), "SIP_DEV_ISSUER": "enabled"}
    for service, variable in (("sip", "SIP_DATABASE_URL"), ("consent", "CONSENT_DATABASE_URL")):
        env.pop(variable, None)
        migrate_service(service, urls[service], data_dir)
        if urls[service]:
            env[variable] = str(urls[service])
    consent_port, sip_port = free_port(), free_port()
    env["CONSENT_SERVICE_URL"] = f"http://127.0.0.1:{consent_port}"
    processes: list[subprocess.Popen] = []
    log = data_dir / "services.log"  # the services' warnings stay out of the figures
    try:
        for module, port in (
            ("services.consent.api", consent_port),
            ("services.sip.api", sip_port),
        ):
            command = service_command(module, "127.0.0.1", port, workers)
            with log.open("ab") as out:
                processes.append(
                    subprocess.Popen([*command, "--log-level", "warning"], env=env,
                                     stdout=out, stderr=subprocess.STDOUT)
                )  # fmt: skip
            if not wait_ready(f"http://127.0.0.1:{port}", processes[-1], seconds=60):
                raise RuntimeError(f"{module} did not start: {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{sip_port}"
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=20)


@contextmanager
def http_side(
    data_dir: Path, urls: dict[str, str | None], clients: int, workers: int
) -> Iterator[Command]:
    with running_services(data_dir, urls, workers) as sip_url:
        token = DevIssuer(data_dir).mint(
            subject="bench-coordinator", role="coordinator", organization=REGION,
            scopes=default_scopes("coordinator"), lifetime_seconds=3600,
        )  # fmt: skip
        headers = {"Authorization": f"Bearer {token}", **FHIR_JSON}
        sessions = [httpx.Client(base_url=sip_url, headers=headers, timeout=30)
                    for _ in range(clients)]  # fmt: skip
        plans: list[list[str]] = [[] for _ in range(clients)]

        def command(client: int, number: int) -> None:
            session, own = sessions[client], plans[client]
            if number % 2 == 0 or not own:
                created = session.post("/fhir/CarePlan", json=care_plan(new_personnummer()))
                own.append(created.raise_for_status().json()["id"])
            else:
                session.post(
                    f"/fhir/CarePlan/{own[number % len(own)]}/$record-need",
                    json=parameters(text=f"Behov {number}"),
                ).raise_for_status()

        try:
            yield command
        finally:
            for session in sessions:
                session.close()


# --- The bare library ---------------------------------------------------------------------


def library_env(data_dir: Path, database: str | None) -> dict[str, str]:
    if database is None:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(data_dir / "library.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    return {**eventsourcing_postgres_env(make_url(database)), "POSTGRES_POOL_SIZE": "5"}


@contextmanager
def library_side(env: dict[str, str], clients: int) -> Iterator[Command]:
    app: Application = Application(env=env)
    plans: list[list[uuid.UUID]] = [[] for _ in range(clients)]

    def command(client: int, number: int) -> None:
        own, at = plans[client], datetime.now(UTC)
        if number % 2 == 0 or not own:
            plan = Plan(
                subject={"system": "http://electronichealth.se/identifier/personnummer",
                         "value": new_personnummer()},
                starting_organization=REGION, starting_organization_kind="region",
                initiative="region", title="SIP", description=None, started_at=at,
                started_by=ACTOR,
            )  # fmt: skip
            own.append(plan.id)
        else:
            plan = app.repository.get(own[number % len(own)])
            plan.record_need(text=f"Behov {number}", wishes=None, at=at, by=ACTOR)
        app.save(plan)

    try:
        yield command
    finally:
        app.close()


# --- The floor: FastAPI and uvicorn around the library's work ---------------------------


@contextmanager
def floor_side(env: dict[str, str], clients: int) -> Iterator[Command]:
    """`bench/floor_app.py` in its own uvicorn process, driven as the services are."""
    port = free_port()
    command_line = [sys.executable, "-m", "uvicorn", "floor_app:create_app", "--factory",
                    "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1",
                    "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command_line, env={**os.environ, **env})
    sessions = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
                for _ in range(clients)]  # fmt: skip
    plans: list[list[str]] = [[] for _ in range(clients)]

    def command(client: int, number: int) -> None:
        session, own = sessions[client], plans[client]
        if number % 2 == 0 or not own:
            created = session.post("/plans", json={"personnummer": new_personnummer()})
            own.append(created.raise_for_status().json()["id"])
        else:
            session.post(
                f"/plans/{own[number % len(own)]}/need", json={"text": f"Behov {number}"}
            ).raise_for_status()

    try:
        if not wait_ready(f"http://127.0.0.1:{port}", process, probe="/docs"):
            raise RuntimeError("the floor app did not start")
        yield command
    finally:
        for session in sessions:
            session.close()
        process.terminate()
        process.wait(timeout=20)


# --- Storage and the run ------------------------------------------------------------------


def measure(server: str | None, workers: int, seconds: float, rounds: int) -> dict:
    """{(side, clients, workers): commands/s}; the library's `workers` is 0. The sides of one
    client count run in turns, `rounds` slices each, so a change in the shared machine's load
    (its disk above all) falls on each side alike rather than on whichever ran then."""
    results = {}
    for clients in (1, 4):
        with ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            database = stack.enter_context(on_server("bench_library", server))
            sides = {("library", clients, 0): stack.enter_context(
                library_side(library_env(folder, database), clients)
            )}  # fmt: skip
            floor_database = stack.enter_context(on_server("bench_library", server))
            (folder / "floor").mkdir()
            sides["floor", clients, 1] = stack.enter_context(
                floor_side(library_env(folder / "floor", floor_database), clients)
            )
            for count in sorted({1, workers} if clients == 4 else {1}):
                urls = {  # named only: `migrate_service` makes them
                    s: stack.enter_context(on_server(f"bench_http_{s}", server, create=False))
                    for s in ("sip", "consent")
                }
                data_dir = folder / f"http-{count}"
                sides["http", clients, count] = stack.enter_context(
                    http_side(data_dir, urls, clients, count)
                )
            totals = dict.fromkeys(sides, (0, 0.0))
            for command in sides.values():
                warm_up(clients, command)
            for _ in range(rounds):
                for key, command in sides.items():
                    done, took = drive(clients, seconds / rounds, command)
                    totals[key] = (totals[key][0] + done, totals[key][1] + took)
            results.update({key: done / took for key, (done, took) in totals.items()})
    return results


def report(results: dict, backends: list[str], workers: int, seconds: float) -> None:
    print(f"commands/s over {seconds:.0f} s each, in turns (half plan creates, half $record-need)")
    print(f"{'database':<10}{'clients':>8}{'library':>10}{'floor':>8}{'HTTP 1 worker':>15}"
          f"{f'HTTP {workers} workers':>17}{'floor ratio':>12}{'ratio':>8}")  # fmt: skip
    for backend in backends:
        found = results[backend]
        for clients in (1, 4):
            library = found["library", clients, 0]
            one = found["http", clients, 1]
            more = found.get(("http", clients, workers)) if workers > 1 and clients == 4 else None
            best = max(one, more or 0)
            floor = found["floor", clients, 1]
            print(f"{backend:<10}{clients:>8}{library:>10.0f}{floor:>8.0f}{one:>15.0f}"
                  f"{(f'{more:.0f}' if more else '-'):>17}{floor / library:>11.2f}x"
                  f"{best / library:>7.2f}x")  # fmt: skip
    for backend in backends:
        found = results[backend]
        one = found["http", 1, 1] / found["library", 1, 0]
        four_by = {c: found["http", 4, c] for c in (1, workers) if ("http", 4, c) in found}
        best_workers = max(four_by, key=lambda c: four_by[c])
        four = four_by[best_workers] / found["library", 4, 0]
        print(
            f"{backend}: 1 client {one:.2f}x (goal {GOAL_ONE}x: "
            f"{'meets' if one >= GOAL_ONE else 'misses'} it); 4 clients {four:.2f}x with "
            f"{best_workers} worker{'s' if best_workers > 1 else ''} per service "
            f"(goal {GOAL_FOUR}x: {'meets' if four >= GOAL_FOUR else 'misses'} it)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="each measurement's length")
    parser.add_argument(
        "--workers", type=int, default=max(2, os.cpu_count() or 2),
        help="processes per service in the 4-client HTTP run (default: the host's cores)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4, help="turns each side's time is cut in")
    parser.add_argument("--skip-postgres", action="store_true")
    arguments = parser.parse_args()
    backends = ["sqlite"]
    if not arguments.skip_postgres and postgres_reachable():
        backends.append("postgres")
    results = {
        backend: measure(
            POSTGRES if backend == "postgres" else None,
            arguments.workers, arguments.seconds, arguments.rounds,
        )
        for backend in backends
    }  # fmt: skip
    report(results, backends, arguments.workers, arguments.seconds)


if __name__ == "__main__":
    main()
