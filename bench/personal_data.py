"""The cost of sealing personal fields (docs/decisions/0007): the SIP service with and without
its events' personal fields encrypted, on the same workload, side by side in one process.

    python bench/personal_data.py [--plans N] [--warm-up N] [--rounds N] [--rebuilds N]
                                  [--skip-postgres]

Writes: the SIP application's commands as requests make them (bench/rebuild.py's workload:
each plan started, six more requests and activated, each with its access record), on the
service's own store as `sip up` opens it, SQLite (the embedded default) and then PostgreSQL
(production's), every plan a new person (whose keys are made then). Rebuild: every read model
rebuilt from zero (`sip projections rebuild`: the plan index and the access-log index) by a
fresh application and, encrypted, a fresh key store (nothing kept in memory), as the command
runs in a new process.

Both stores are open at once, and the work alternates between them in small rounds (`--plans`
plans, or one rebuild), which side goes first alternating too. A shared machine's bursts of
load, and its slower and faster spells, fall on both sides alike; measured in separate
processes, the ratio moved by 0.2 from one run to the next on a quiet machine, as each process
runs at its own speed. The first rounds (`--warm-up`) are written and not counted: in the
first 40 rounds on new SQLite stores, one side or the other ran up to 1.4 times slower for a
stretch of ten or twenty rounds (GC and checkpoints ruled out by their timings; the cause not
found), which moved the ratio of 40 rounds counted from the first between 0.96 and 1.09 from
run to run, against 1.20 to 1.23 over 100. Prints commands/s, rebuilt events/s and
the encrypted/plain ratio of the medians of each (goal: under 1.15), in wall and CPU time,
with the middle half of the rounds' own ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from postgres_db import POSTGRES, on_server, postgres_reachable  # bench/postgres_db.py
from rebuild import write_workload  # bench/rebuild.py

from services.common.migrations.runner import migrate_service
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.master_key import MasterKey, MasterKeys
from services.ops.offline import SERVICES

REQUESTS_PER_PLAN = 7  # started, six steps, activated (write_workload)
PERSONS = 1000  # write_workload's distinct persons: each round's plans are new persons
SIDES = ("plain", "encrypted")


class Side:
    """One store, encrypted or not, and how to open a fresh application on it."""

    def __init__(
        self, encrypted: bool, data_dir: Path, database_url: str | None, master: MasterKeys
    ) -> None:
        self.application_class, self.projection_classes = SERVICES["sip"]
        self.encrypted, self.master = encrypted, master
        migrate_service("sip", database_url, data_dir)
        self.storage = storage_for("sip", database_url, data_dir)
        self.engine = read_model_engine(self.storage)
        self.writer = self.application()
        self.events = 0

    def application(self) -> Any:
        keys = PersonalDataKeys(self.engine, self.master) if self.encrypted else None
        return self.application_class(env=self.storage.event_store_env, personal_data=keys)

    def write(self, plans: int, first: int) -> None:
        write_workload(self.writer, plans, first)

    def rebuild(self) -> None:
        reader = self.application()
        try:
            for projection in [kind(reader, self.engine) for kind in self.projection_classes]:
                projection.rebuild()
            self.events = reader.recorder.max_notification_id() or 0
        finally:
            reader.close()

    def close(self) -> None:
        self.writer.close()
        self.engine.dispose()


def alternated(
    sides: dict[str, Side], rounds: int, work: Callable[[Side, int], None]
) -> dict[str, list[tuple[float, float]]]:
    """Each round's (wall, CPU) seconds of `work(side, round)` on each side, taken in turns."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for round_number in range(rounds):
        order = SIDES if round_number % 2 == 0 else SIDES[::-1]
        for name in order:
            started, cpu = time.perf_counter(), time.process_time()
            work(sides[name], round_number)
            times[name].append((time.perf_counter() - started, time.process_time() - cpu))
    return times


def report(label: str, times: dict[str, list[tuple[float, float]]]) -> None:
    for clock, index in (("wall", 0), ("CPU", 1)):
        plain = [t[index] for t in times["plain"]]
        encrypted = [t[index] for t in times["encrypted"]]
        ratios = sorted(e / p for p, e in zip(plain, encrypted, strict=True))
        quarter = len(ratios) // 4
        print(
            f"  {label} {clock:4} time, encrypted/plain: "
            f"{statistics.median(encrypted) / statistics.median(plain):.3f} "
            f"(rounds' own ratios, middle half: {ratios[quarter]:.2f} to "
            f"{ratios[-1 - quarter]:.2f})"
        )


def measure(backend: str, server: str | None, arguments: argparse.Namespace) -> None:
    """Both sides on one backend: `server` None is SQLite (files in a scratch folder)."""
    master = MasterKeys(MasterKey.generate())
    plans = arguments.plans
    with tempfile.TemporaryDirectory() as folder, ExitStack() as opened:
        sides = {}
        for name in SIDES:
            url = opened.enter_context(on_server(f"bench_personal_{name}", server, create=False))
            sides[name] = Side(name == "encrypted", Path(folder) / name, url, master)
            opened.callback(sides[name].close)
        warm_up = arguments.warm_up
        alternated(sides, warm_up, lambda side, number: side.write(plans, number * plans))
        writes = alternated(
            sides,
            arguments.rounds,
            lambda side, number: side.write(plans, (warm_up + number) * plans),
        )
        rebuilds = alternated(sides, arguments.rebuilds, lambda side, _: side.rebuild())
        print(
            f"{backend}: {arguments.rounds} rounds of {plans} plans a side "
            f"(after {warm_up} not counted), "
            f"{arguments.rebuilds} rebuilds a side, alternated"
        )
        commands = plans * REQUESTS_PER_PLAN
        write_seconds = {name: statistics.median(t[0] for t in writes[name]) for name in SIDES}
        for name in SIDES:
            rebuild_seconds = statistics.median(t[0] for t in rebuilds[name])
            print(
                f"  {name:9} {commands / write_seconds[name]:8.0f} commands/s"
                f"  {sides[name].events / rebuild_seconds:8.0f} events rebuilt/s"
                f" ({sides[name].events} events)"
            )
        extra = (write_seconds["encrypted"] - write_seconds["plain"]) / commands
        print(f"  the encrypted writes' extra: {extra * 1e6:.0f} µs a command (wall)")
        report("writes ", writes)
        report("rebuild", rebuilds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=10, help="plans per side in a round")
    parser.add_argument("--warm-up", type=int, default=30, help="rounds of writes not counted")
    parser.add_argument("--rounds", type=int, default=60, help="rounds of writes counted")
    parser.add_argument("--rebuilds", type=int, default=12, help="rebuilds of each side")
    parser.add_argument("--skip-postgres", action="store_true")
    arguments = parser.parse_args()
    if arguments.plans * (arguments.warm_up + arguments.rounds) > PERSONS:
        parser.error(
            f"--plans x (--warm-up + --rounds) must be at most {PERSONS} (new persons each round)"
        )
    measure("SQLite", None, arguments)
    if not arguments.skip_postgres and postgres_reachable(POSTGRES):
        measure("PostgreSQL", POSTGRES, arguments)


if __name__ == "__main__":
    main()
