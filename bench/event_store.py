"""Event-store recorders side by side: the eventsourcing library's native SQLite and
PostgreSQL recorders against eventsourcing_sqlalchemy, on the same workload, in one run.

    python bench/event_store.py [--commands N] [--skip-postgres]

The workload is the service's: one `app.save()` per command, as a request makes it; half the
commands start a new plan, half append one event to an existing plan. Reads reconstruct
plans from their events. Prints events/s and the native/SQLAlchemy ratio per database.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from postgres_db import postgres_reachable, scratch_database
from sqlalchemy.engine import make_url

from services.common.persistence import eventsourcing_postgres_env


class BenchPlan(Aggregate):
    @event("Started")
    def __init__(self, subject: dict, organization: str, title: str) -> None:
        self.subject = subject
        self.organization = organization
        self.title = title
        self.notes: list[str] = []

    @event("NoteAdded")
    def add_note(self, text: str, author: dict) -> None:
        self.notes.append(text)


class BenchPlans(Application):
    pass


def run(env: dict[str, str], commands: int) -> tuple[float, float]:
    app = BenchPlans(env=env)
    plans: list[BenchPlan] = []
    author = {"subject": "u1", "role": "coordinator", "organization": "SE2321000032-R1"}
    started = time.perf_counter()
    for number in range(commands):
        if number % 2 == 0 or not plans:
            plan = BenchPlan(
                subject={"system": "personnummer", "value": f"19121212{number:04d}"},
                organization="SE2321000032-R1",
                title=f"SIP {number}",
            )
            plans.append(plan)
        else:
            plan = app.repository.get(plans[number % len(plans)].id)
            plan.add_note(f"note {number}", author)
        app.save(plan)
    written = commands / (time.perf_counter() - started)
    events = app.recorder.max_notification_id() or 0
    started = time.perf_counter()
    for plan in plans:
        app.repository.get(plan.id)
    read = events / (time.perf_counter() - started)
    app.close()
    return written, read


def sqlite_envs(folder: Path) -> dict[str, dict[str, str]]:
    return {
        "native sqlite": {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(folder / "native.sqlite"),
        },
        "sqlalchemy sqlite": {
            "PERSISTENCE_MODULE": "eventsourcing_sqlalchemy",
            "SQLALCHEMY_URL": f"sqlite:///{folder / 'sqlalchemy.sqlite'}",
        },
    }


def postgres_envs(native: str, alchemy: str) -> dict[str, dict[str, str]]:
    return {
        "native postgres": eventsourcing_postgres_env(make_url(native)),
        "sqlalchemy postgres": {
            "PERSISTENCE_MODULE": "eventsourcing_sqlalchemy",
            "SQLALCHEMY_URL": alchemy.replace("postgresql://", "postgresql+psycopg://", 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=3000)
    parser.add_argument("--skip-postgres", action="store_true")
    arguments = parser.parse_args()
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, env in sqlite_envs(Path(folder)).items():
            results[name] = run(env, arguments.commands)
    if not arguments.skip_postgres and postgres_reachable():
        with (
            scratch_database("bench_native") as native,
            scratch_database("bench_sqlalchemy") as alchemy,
        ):
            for name, env in postgres_envs(native, alchemy).items():
                results[name] = run(env, arguments.commands)
    print(f"{arguments.commands} commands (one save each) per backend")
    print(f"{'backend':<22}{'write events/s':>16}{'read events/s':>16}")
    for name, (written, read) in results.items():
        print(f"{name:<22}{written:>16,.0f}{read:>16,.0f}")
    for database in ("sqlite", "postgres"):
        native, alchemy = results.get(f"native {database}"), results.get(f"sqlalchemy {database}")
        if native and alchemy:
            print(
                f"native/sqlalchemy on {database}: write {native[0] / alchemy[0]:.2f}x, "
                f"read {native[1] / alchemy[1]:.2f}x"
            )


if __name__ == "__main__":
    main()
