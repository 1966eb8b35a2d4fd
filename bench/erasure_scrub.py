"""What leaving nothing of an erased person in the SQLite files costs (issue 16,
docs/decisions/0007, "Leftovers in the files").

    python bench/erasure_scrub.py [--plans N] [--rounds R]

Writes bench/rebuild.py's workload (seven requests a plan, each with its access record,
sealed per person), then measures, in alternated rounds, medians:
- the read models rebuilt from zero (what `sip retention run` does after erasing) with the
  connections zeroing what they delete (`secure_delete=ON`, the choice) and without;
- emptying the write-ahead log at the end of the run (`wal_checkpoint(TRUNCATE)`);
- the alternative not taken: `VACUUM` of the whole file (events included) after the run.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rebuild import write_workload  # bench/rebuild.py, beside this file
from sqlalchemy import event

from services.common.migrations.runner import migrate_service
from services.common.persistence import read_model_engine, storage_for
from services.ops.offline import open_service


def rebuild_seconds(service: Any, data_dir: Path, secure_delete: bool) -> float:
    engine = read_model_engine(storage_for("sip", None, data_dir))
    if not secure_delete:

        @event.listens_for(engine, "connect")
        def _keep_deleted(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.execute("PRAGMA secure_delete=OFF")

    try:
        started = time.perf_counter()
        for projection in service.projections(engine):
            projection.rebuild()
        return time.perf_counter() - started
    finally:
        engine.dispose()


def statement_seconds(data_dir: Path, statement: str) -> float:
    """On a connection of its own outside any transaction (VACUUM refuses one)."""
    connection = sqlite3.connect(data_dir / "sip.sqlite", isolation_level=None, timeout=10)
    try:
        started = time.perf_counter()
        connection.execute(statement).fetchall()
        return time.perf_counter() - started
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        migrate_service("sip", None, data_dir)
        with open_service("sip", data_dir, None) as service:
            write_workload(service.application, arguments.plans)
            events = service.application.recorder.max_notification_id() or 0
            times: dict[str, list[float]] = {"on": [], "off": [], "truncate": [], "vacuum": []}
            for round_ in range(arguments.rounds):
                order = (True, False) if round_ % 2 == 0 else (False, True)
                for secure in order:
                    times["on" if secure else "off"].append(
                        rebuild_seconds(service, data_dir, secure)
                    )
                times["truncate"].append(
                    statement_seconds(data_dir, "PRAGMA wal_checkpoint(TRUNCATE)")
                )
                times["vacuum"].append(statement_seconds(data_dir, "VACUUM"))
                statement_seconds(data_dir, "PRAGMA wal_checkpoint(TRUNCATE)")  # the VACUUM's
        size = (data_dir / "sip.sqlite").stat().st_size
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{arguments.plans} plans, {events:,} events, sip.sqlite {size / 1e6:.1f} MB")
    print(f"rebuild, secure_delete=ON:  {median['on']:.3f} s")
    print(f"rebuild, secure_delete=OFF: {median['off']:.3f} s")
    print(f"ratio ON/OFF:               {median['on'] / median['off']:.2f}")
    print(f"wal_checkpoint(TRUNCATE):   {median['truncate'] * 1000:.1f} ms")
    print(f"VACUUM (the alternative):   {median['vacuum']:.3f} s")


if __name__ == "__main__":
    main()
